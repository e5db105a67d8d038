"""Checkpoints: model ``state_dict`` + the resolved spec as JSON, never pickled classes.

A checkpoint directory holds ``model.pt`` (denoiser weights), ``optimizer.pt`` (to resume) and
``meta.json`` (step, data shape, normalisation, the resolved spec and the trained method), whose
spec and method are read back through the spec parser (:func:`checkpoint_spec`). A checkpoint is written
as one unit: into a hidden staging directory beside it, which is then renamed into place, so an
interrupted save leaves the previous checkpoint (or nothing) and never a mix of old and new files.

Ray Train then copies the directory into its storage file by file, so a copy cut short by a kill
can look like a checkpoint there: ``manifest.json``, written last, names every file with its size,
and :func:`is_complete` holds a directory for a checkpoint only when each of them is there, whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from incdyn.datasets.errors import UserError
from incdyn.models.backbones.registry import build_denoiser, switch_backbone
from incdyn.models.denoiser import Denoiser
from incdyn.platform import kill_points
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, parse_spec

MODEL_FIELD = "MODEL"  # what names a trained model on the command line


class ModelNotFoundError(UserError, FileNotFoundError):
    """``MODEL`` names no checkpoint: not a checkpoint directory, run artifact or registered
    model version (a :class:`FileNotFoundError` too)."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(MODEL_FIELD, problem, fix)

    def __reduce__(self):
        return type(self), (self.problem, self.fix)


MANIFEST = "manifest.json"  # every file of the checkpoint with its size, written last
CHECKPOINT_FILES = ("model.pt", "optimizer.pt", "meta.json", MANIFEST)  # what a save writes
SIDECAR_FILES = ("calibration.json",)  # added beside a finished checkpoint (its calibration)


def _move_into_place(staging: Path, directory: Path) -> None:
    if directory.is_dir() and any(directory.iterdir()):
        # rename(2) replaces only an empty directory: set the previous checkpoint aside first
        # (the one window where neither is at ``directory`` is these two renames).
        old = staging.with_name(staging.name + ".old")
        os.replace(directory, old)
        try:
            os.replace(staging, directory)
        except BaseException:
            os.replace(old, directory)
            raise
        shutil.rmtree(old)
    else:
        os.replace(staging, directory)


def save_checkpoint(
    directory: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
) -> Path:
    """Write a checkpoint to ``directory``: missing, empty, or an earlier checkpoint to replace."""
    directory = Path(directory)
    known = CHECKPOINT_FILES + SIDECAR_FILES
    if directory.is_dir() and any(p.name not in known for p in directory.iterdir()):
        raise ValueError(f"{directory} holds files besides a checkpoint's: not replacing it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.saving-", dir=directory.parent))
    try:
        staging.chmod(0o755)
        torch.save(model.state_dict(), staging / "model.pt")
        kill_points.reached("checkpoint_save")
        if optimizer is not None:
            torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        meta = {**meta, "manifest": MANIFEST}  # a copy without the manifest is incomplete
        (staging / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        write_manifest(staging)
        _move_into_place(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # left only by a failed save
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "meta.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{directory} is not an incdyn checkpoint (no meta.json)")
    return json.loads(path.read_text())


def write_manifest(directory: str | Path) -> None:
    """Name every file of ``directory`` with its size in its manifest (the last file written)."""
    directory = Path(directory)
    sizes = {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.name != MANIFEST}
    (directory / MANIFEST).write_text(json.dumps(sizes, sort_keys=True))


def is_complete(directory: str | Path) -> bool:
    """Whether ``directory`` holds a whole checkpoint: its manifest's files at their sizes (a
    checkpoint written before manifests: ``meta.json`` readable and ``model.pt`` there)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if "manifest" not in meta:
            return (directory / "model.pt").is_file()
        sizes = json.loads((directory / MANIFEST).read_text())
        return all((directory / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, ValueError):
        return False


def checkpoint_spec(meta: dict[str, Any]) -> tuple[ExperimentSpec, DiffusionMethod]:
    """The resolved spec and the trained method of a checkpoint's ``meta.json``, validated."""
    raw, method = dict(meta["spec"]), dict(meta["method"])
    # checkpoints written before backbones had their own options carry every backbone field
    raw["backbone"] = _own_options(raw.get("backbone"))
    raw["methods"] = [
        {**m, "backbone": _own_options(m["backbone"])} if "backbone" in m else m
        for m in raw["methods"]
    ]
    method["backbone"] = _own_options(method.get("backbone"))
    spec = parse_spec(raw, "(checkpoint meta.json)")
    return spec, DiffusionMethod.model_validate(method)


def _own_options(backbone: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if backbone is None else switch_backbone(backbone, backbone.get("name", "unet"))


def load_denoiser(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[Denoiser, dict]:
    """Rebuild the denoiser from ``meta.json`` and load its weights (``weights_only=True``);
    a directory that is not a whole checkpoint (:func:`is_complete`) is refused."""
    meta = read_meta(directory)
    if not is_complete(directory):
        raise ValueError(
            f"{directory} is an incomplete checkpoint (a copy cut short): not loading it"
        )
    spec, method = checkpoint_spec(meta)
    model = build_denoiser(
        spec.backbone_of(method),
        spec.schedule,
        channels=len(meta["channels"]),
        frames=meta["frames"],
    )
    state = torch.load(Path(directory) / "model.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), meta
