"""The common output of every PDE generator: complete fields plus per-sample parameters.

A generator (``navier_stokes``, ``shallow_water``, ``advection``) returns a :class:`Simulation`;
``incdyn.datasets.store`` turns it into the zarr layout documented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Simulation:
    """Complete trajectories of ``N`` samples.

    Attributes:
        fields: ``(N, T, C, H, W)`` float32 tensor, one channel per physical variable.
        params: per-sample physical parameters, each a ``(N,)`` tensor (e.g. ``viscosity``).
        channels: names of the ``C`` channels, in order.
        time: ``(T,)`` physical time of each frame.
        y: ``(H,)`` physical coordinate of each row.
        x: ``(W,)`` physical coordinate of each column.
        units: unit strings for channels, params and coordinates, keyed by name.
        attrs: data-set metadata written to the store's root attributes (e.g. ERA5's source
            store and frame cadence); JSON values.
        masks: the data's own observation masks, bool ``(N, T, H, W)`` (real gaps: ``fields``
            is NaN where unobserved and there is no truth), or None (complete fields).
        domain: bool ``(H, W)``, False outside the physical domain (land under a sea field),
            or ``(N, H, W)`` when each sample has its own (the coastal tiles of a large grid),
            or None (every point is inside).
    """

    fields: torch.Tensor
    params: dict[str, torch.Tensor]
    channels: tuple[str, ...]
    time: np.ndarray
    y: np.ndarray
    x: np.ndarray
    units: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    masks: torch.Tensor | None = None
    domain: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.fields.ndim != 5:
            raise ValueError(
                f"fields must be (N, T, C, H, W), got shape {tuple(self.fields.shape)}"
            )
        n, t, c, h, w = self.fields.shape
        if len(self.channels) != c:
            raise ValueError(f"{len(self.channels)} channel names for {c} channels")
        if (len(self.time), len(self.y), len(self.x)) != (t, h, w):
            raise ValueError("time/y/x coordinates do not match the field shape")
        for name, value in self.params.items():
            if tuple(value.shape) != (n,):
                raise ValueError(f"param {name!r} must have shape ({n},), got {tuple(value.shape)}")
        if self.domain is not None and self.domain.shape not in ((h, w), (n, h, w)):
            raise ValueError(f"domain must be (H, W) or (N, H, W), got {self.domain.shape}")
