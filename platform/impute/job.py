"""One imputation, everything decided: what the driver hands to every imputer (picklable)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from incdyn.platform.impute.layout import Layout


@dataclass(frozen=True)
class ImputeJob:
    """Attributes:
    url: the input; variables, dims, time: how it is read (``time`` None: every frame).
    domain: the source's domain setting; inside: the domain mask ``(H, W)``.
    method: ``model`` or a classical method; checkpoint: the model's checkpoint directory.
    k: ensemble size (None: the model's); seed: base seed of every window's generator.
    level: central level of ``VAR_lower``/``VAR_upper``.
    layout: windows, tiles and output blocks.
    store: the zarr the blocks are written into; time_dim: its time dimension.
    holdout: share of observed points withheld (0: none); holdout_seed: its seed.
    threads: torch threads per imputer; device: ``cpu`` or ``cuda``.
    """

    url: str
    variables: tuple[str, ...]
    dims: tuple[str, str, str]
    time: tuple[str, str] | None
    domain: object
    inside: np.ndarray
    method: str
    checkpoint: str | None
    k: int | None
    seed: int
    level: float
    layout: Layout
    store: str
    time_dim: str
    holdout: float = 0.0
    holdout_seed: int = 0
    threads: int = 1
    device: str = "cpu"
