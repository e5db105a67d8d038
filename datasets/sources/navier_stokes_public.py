"""Importer for the public Navier–Stokes data set the paper uses (isotropic turbulence, Cao 2024).

The release ships a torch ``.pt`` file holding a ``vorticity`` tensor of shape ``(N, T, 64, 64)``
(1152 trajectories of 100 frames; the release divides vorticity by 38 — our store normalises
with training statistics instead). Samples are taken in a fixed random order (seed 42, as the
release's 90/10 split) so that ``build_store``'s ordered splits are random, disjoint subsets.
The file is memory-mapped, so a shard reads only its own trajectories.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.source_config import Int, Number, SourceConfig
from incdyn.datasets.store import StoreError

CHANNELS = ("vorticity",)


class PublicNavierStokesConfig(SourceConfig):
    """Where the public file lies and what to take from it.

    Attributes:
        path: local path of the ``.pt`` file (download it first; nothing is fetched here).
        key: name of the tensor in the file.
        frames: keep the first ``frames`` frames of each trajectory (None: all).
        order_seed: seed of the fixed random order of trajectories (None: file order).
        domain: side of the periodic box, for the coordinates.
    """

    path: str = "data/ns_public.pt"
    key: str = "vorticity"
    frames: Int | None = Field(None, ge=1)  # None: every frame of the file
    order_seed: Int | None = 42  # None: file order
    domain: Number = Field(2 * math.pi, gt=0.0)  # box side, m


PRESETS = {"paper": PublicNavierStokesConfig()}


@functools.lru_cache(maxsize=2)
def _load(path: str, key: str, mtime: float) -> torch.Tensor:
    del mtime  # part of the cache key: a rewritten file is read again
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise StoreError(
            f"Navier–Stokes file {path}: cannot be read as a torch .pt file ({exc})"
        ) from exc
    tensor = obj.get(key) if isinstance(obj, dict) else None
    if tensor is None:
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise StoreError(f"Navier–Stokes file {path}: no tensor {key!r} (found {found})")
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise StoreError(
            f"Navier–Stokes file {path}: {key!r} must be a (N, T, H, W) tensor, got {shape}"
        )
    return tensor


def load_vorticity(cfg: PublicNavierStokesConfig) -> torch.Tensor:
    """The file's ``(N, T, H, W)`` vorticity tensor (memory-mapped)."""
    path = Path(cfg.path)
    if not path.is_file():
        raise StoreError(
            f"Navier–Stokes file {path} does not exist (download the public data set there)"
        )
    return _load(str(path.resolve()), cfg.key, path.stat().st_mtime)


def sample_order(cfg: PublicNavierStokesConfig, n_total: int) -> np.ndarray:
    if cfg.order_seed is None:
        return np.arange(n_total)
    return np.random.default_rng(cfg.order_seed).permutation(n_total)


def generate(
    cfg: PublicNavierStokesConfig,
    n: int,
    generator: torch.Generator | None = None,
    *,
    offset: int = 0,
) -> Simulation:
    """Trajectories ``offset .. offset + n − 1`` of the fixed order (the generator is unused)."""
    del generator
    w = load_vorticity(cfg)
    total, frames_all, h, width = w.shape
    if offset + n > total:
        raise StoreError(
            f"Navier–Stokes file {cfg.path} holds {total} trajectories; {offset + n} requested"
        )
    frames = frames_all if cfg.frames is None else min(cfg.frames, frames_all)
    chosen = sample_order(cfg, total)[offset : offset + n]
    fields = w[torch.from_numpy(np.sort(chosen))][:, :frames].to(torch.float32)
    fields = fields[torch.from_numpy(np.argsort(np.argsort(chosen)))]  # back to the chosen order
    if not torch.isfinite(fields).all():
        raise StoreError(
            f"Navier–Stokes file {cfg.path}: non-finite vorticity in trajectories {sorted(chosen)[:5]}…"
        )
    return Simulation(
        fields=fields[:, :, None],
        params={"source_index": torch.from_numpy(chosen.astype(np.float64))},
        channels=CHANNELS,
        time=np.arange(frames, dtype=np.float64),
        y=np.arange(h) * cfg.domain / h,
        x=np.arange(width) * cfg.domain / width,
        units={"vorticity": "1/s", "time": "frame", "x": "m", "y": "m", "source_index": "1"},
    )
