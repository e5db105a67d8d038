"""What fills one batch of (window, tile) pieces: a trained diffusion model's single-step
ensemble, or a classical method piece by piece.

A filler takes ``values (N, T, C, h, w)`` float32 (NaN or anything at unobserved points),
``mask (N, T, h, w)`` bool and one seed per piece, and returns the estimate and the ensemble
spread, both ``(N, T, C, h, w)`` physical units (spread None for a method without one). The
interval half-width is ``inflation(level) · spread`` per channel.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from incdyn.models.baselines.classical import CLASSICAL

SIGMA_LEVEL = 0.6827  # the level whose calibrated half-width is the "one-sigma" spread


class Filler(Protocol):
    name: str
    k: int
    calibrated: bool

    def fill(
        self, values: np.ndarray, mask: np.ndarray, seeds: list[int]
    ) -> tuple[np.ndarray, np.ndarray | None]: ...

    def inflation(self, level: float) -> np.ndarray: ...

    def spread_scale(self) -> np.ndarray: ...


class DiffusionFiller:
    """A checkpoint's single-step ensemble over K context masks: every piece of a batch, K rows
    each, through the network together; each piece draws from its own seeded generator."""

    def __init__(self, checkpoint: str | Path, *, k: int | None, device: str = "cpu") -> None:
        from incdyn.platform.checkpoint import checkpoint_spec, load_denoiser
        from incdyn.platform.evaluation.calibration import load_calibration
        from incdyn.platform.sampling import sampler_plan

        self.denoiser, self.meta = load_denoiser(checkpoint, device)
        spec, method = checkpoint_spec(self.meta)
        self.plan = sampler_plan(spec, method)
        self.k = int(k or method.ensemble)
        self.plan = dataclasses.replace(self.plan, k=self.k)
        self.calibration = load_calibration(checkpoint)
        self.calibrated = self.calibration is not None
        self.name = str(self.meta["method"].get("name", "model"))
        self.device = device
        norm = self.meta["normalization"]
        self.mean = np.asarray(norm["mean"], np.float32).reshape(1, 1, -1, 1, 1)
        self.std = np.asarray(norm["std"], np.float32).reshape(1, 1, -1, 1, 1)

    def fill(
        self, values: np.ndarray, mask: np.ndarray, seeds: list[int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        from incdyn.models.samplers.request import SeededRequest, single_step

        x = (values.astype(np.float32) - self.mean) / self.std
        x = np.where(mask[:, :, None], x, np.float32(0.0)).astype(np.float32)
        items = [
            SeededRequest(
                x=torch.from_numpy(np.ascontiguousarray(x[i].transpose(1, 0, 2, 3))).to(
                    self.device
                ),
                mask=torch.from_numpy(np.ascontiguousarray(mask[i])).to(self.device),
                k=self.k,
                seed=int(seeds[i]),
            )
            for i in range(len(seeds))
        ]
        outs = single_step(self.denoiser, self.plan, items)
        mean = np.stack([m.cpu().numpy().transpose(1, 0, 2, 3) for m, _ in outs])
        spread = np.stack([s.cpu().numpy().transpose(1, 0, 2, 3) for _, s in outs])
        return mean * self.std + self.mean, spread * self.std

    def inflation(self, level: float) -> np.ndarray:
        from incdyn.platform.evaluation.calibration import served_inflation

        return served_inflation(self.calibration, level, self.k, self.mean.shape[2])

    def spread_scale(self) -> np.ndarray:
        """Per channel: what the members' spread is multiplied by for ``VAR_spread`` (the
        calibrated one-sigma half-width where the model carries a calibration, else 1)."""
        if self.calibration is None:
            return np.ones(self.mean.shape[2])
        return self.calibration.inflation(SIGMA_LEVEL)


class ClassicalFiller:
    """A classical method (Telea, Navier–Stokes inpainting, temporal consistency) piece by
    piece: no ensemble, no spread."""

    k = 1
    calibrated = False

    def __init__(self, name: str) -> None:
        if name not in CLASSICAL:
            raise ValueError(f"--method: {name!r} is not one of {sorted(CLASSICAL)}")
        self.name = name

    def fill(
        self, values: np.ndarray, mask: np.ndarray, seeds: list[int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        del seeds
        method = CLASSICAL[self.name]
        v = values.astype(np.float32)
        out = np.stack([method(v[i], mask[i]) for i in range(values.shape[0])])
        return out, None

    def inflation(self, level: float) -> np.ndarray:
        return np.array([np.nan])

    def spread_scale(self) -> np.ndarray:
        return np.array([np.nan])
