"""Error on held-out observed points: the truth-free score of every method.

The imputation of a held-out pass (the model saw ``mask`` without the held-out points) is
compared with the *observed* values at the held-out points, in the same units as
:class:`~incdyn.datasets.metrics.squared_error.SquaredError` (each channel divided by its
training standard deviation). Accumulates shard by shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class HeldoutError:
    """Streaming sums of squared errors at held-out points; :meth:`result` gives the metrics."""

    channels: tuple[str, ...]
    sums: dict[str, np.ndarray] = field(default_factory=dict)

    def update(
        self, imputed: np.ndarray, observed: np.ndarray, holdout: np.ndarray, std: np.ndarray
    ) -> None:
        """imputed, observed ``(N, T, C, H, W)`` physical units (``observed`` may be NaN away from
        held-out points); holdout bool ``(N, T, H, W)``; std ``(C,)``."""
        if imputed.shape != observed.shape:
            raise ValueError(f"imputed shape {imputed.shape} != observed shape {observed.shape}")
        held = np.broadcast_to(holdout[:, :, None], imputed.shape)
        diff = np.where(held, imputed - np.where(held, observed, 0.0), 0.0)
        if not np.isfinite(diff).all():
            raise ValueError("imputed or observed values are NaN or inf at held-out points")
        err = (diff / std.reshape(1, 1, -1, 1, 1)) ** 2
        for key, value in (
            ("sum", err.sum(axis=(0, 1, 3, 4))),
            ("n", held.sum(axis=(0, 1, 3, 4)).astype(float)),
        ):
            self.sums[key] = self.sums.get(key, 0.0) + value

    def merge(self, other: HeldoutError) -> None:
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def result(self) -> dict[str, float]:
        """``test_heldout_mse`` (and one per channel when there are several); NaN without points."""
        s = self.sums
        if not s or s["n"].sum() == 0:
            return {"test_heldout_mse": float("nan")}
        out = {"test_heldout_mse": float(s["sum"].sum() / s["n"].sum())}
        if len(self.channels) > 1:
            for i, name in enumerate(self.channels):
                out[f"test_heldout_mse_{name}"] = float(s["sum"][i] / max(s["n"][i], 1.0))
        return out
