"""Checkpoints: model ``state_dict`` + the resolved spec as JSON, never pickled classes.

A checkpoint directory holds ``model.pt`` (denoiser weights), ``optimizer.pt`` (to resume) and
``meta.json`` (step, method, data shape, normalisation, resolved spec). Files are written to a
temporary name and renamed, so an interrupted save never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.registry import build_denoiser


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
) -> Path:
    """Write a checkpoint into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_save(model.state_dict(), directory / "model.pt")
    if optimizer is not None:
        _atomic_save(optimizer.state_dict(), directory / "optimizer.pt")
    tmp = directory / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, directory / "meta.json")
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not an incdyn checkpoint (no meta.json)")
    return json.loads(path.read_text())


def load_denoiser(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[Denoiser, dict]:
    """Rebuild the denoiser from ``meta.json`` and load its weights (``weights_only=True``)."""
    meta = read_meta(directory)
    spec = meta["spec"]
    model = build_denoiser(
        spec["backbone"], spec["schedule"], channels=len(meta["channels"]), frames=meta["frames"]
    )
    state = torch.load(Path(directory) / "model.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), meta
