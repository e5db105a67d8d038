"""The checkpoints a killed run left on disk, and Ray Train's snapshot of them made consistent.

Ray Train restores a run from ``checkpoint_manager_snapshot.json`` in its folder, which names the
checkpoints it holds; a name whose folder is gone fails the whole ``fit()``. A kill can leave the
folder out of step with it: the snapshot still naming a checkpoint that retention has deleted, a
snapshot cut short mid-write, a checkpoint folder half copied, or a whole checkpoint persisted
that the snapshot never registered. So incdyn reads checkpoints from the disk itself
(:func:`stored_checkpoints`: every whole one, by its ``meta.json``) and, before fitting a run
folder again, sets aside a snapshot that does not match the disk (:func:`repair_snapshot`): Ray
Train then starts that run afresh and the training resumes from the newest whole checkpoint
found on disk, which the driver hands it (``resume_from``).
"""

from __future__ import annotations

import glob
import json
import os
import time
import warnings
from pathlib import Path

import ray.train
from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME as SNAPSHOT

from incdyn.platform.checkpoint import is_complete, read_meta

GROUP_MARK = "-group-"  # in a shared worker group's run folder name
STALE_SUFFIX = ".stale"  # a set-aside snapshot: ``<snapshot>.stale-<epoch seconds>``

Found = dict[str, tuple[int, ray.train.Checkpoint]]


def snapshot_names(folder: Path) -> list[str]:
    """The checkpoint folder names that ``folder``'s snapshot holds (none without a snapshot);
    ValueError if it cannot be read."""
    path = folder / SNAPSHOT
    if not path.is_file():
        return []
    state = json.loads(path.read_text())  # ValueError when cut short
    results = list(state["checkpoint_results"]) + list(state.get("pending_training_results", []))
    if state.get("latest_checkpoint_result"):
        results.append(state["latest_checkpoint_result"])
    return sorted({r["checkpoint_dir_name"] for r in results})


def repair_snapshot(folder: Path) -> str | None:
    """Set aside ``folder``'s snapshot when it cannot be read or names a checkpoint that is gone
    or incomplete; returns why (after one warning), or None when there was nothing to repair."""
    try:
        names = snapshot_names(folder)
    except (OSError, ValueError, KeyError, TypeError) as err:
        reason = f"its snapshot cannot be read ({type(err).__name__})"
    else:
        bad = [n for n in names if not (folder / n).is_dir() or not is_complete(folder / n)]
        if not bad:
            return None
        reason = f"its snapshot names checkpoints that are gone or incomplete: {', '.join(bad)}"
    aside = folder / f"{SNAPSHOT}{STALE_SUFFIX}-{int(time.time())}"
    os.replace(folder / SNAPSHOT, aside)
    warnings.warn(
        f"{folder.name}: {reason}; resuming from the newest whole checkpoint on disk",
        stacklevel=2,
    )
    return reason


def _checkpoint_folders(run_folder: Path) -> list[Path]:
    return sorted(p for p in run_folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def stored_checkpoints(root: Path, names: list[str]) -> Found:
    """The newest whole (step, checkpoint) of each training in ``names``: in its own Ray Train
    run folder under ``root`` or in a shared group's of the same experiment. A checkpoint folder
    cut short is passed over with a warning (the training resumes from an older one, or again
    from step 0)."""
    found: Found = {}
    prefixes = {n.rsplit("-", 1)[0] for n in names}  # the experiments' names (run_name)
    groups = sorted(g for p in prefixes for g in root.glob(f"{glob.escape(p)}{GROUP_MARK}*"))
    for run_folder in [root / n for n in names] + groups:
        if not run_folder.is_dir():
            continue
        own = None if GROUP_MARK in run_folder.name else run_folder.name
        for folder in _checkpoint_folders(run_folder):
            if not (folder / "meta.json").is_file() and not (folder / "model.pt").is_file():
                continue  # not a checkpoint (Ray Train's own files)
            if not is_complete(folder):
                warnings.warn(f"passing over {folder}: an incomplete checkpoint", stacklevel=2)
                continue
            meta = read_meta(folder)
            name = meta.get("train_run") or own
            if name in names and (name not in found or meta["step"] > found[name][0]):
                found[name] = (int(meta["step"]), ray.train.Checkpoint(str(folder)))
    return found
