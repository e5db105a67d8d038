"""Scores shared by every method and baseline: MSE over all and over unobserved points.

Errors are measured in normalised units (each channel divided by its training standard
deviation; the paper's release divides vorticity by a constant for the same purpose), so
numbers are comparable across data sets and channels. Accumulates shard by shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from incdyn.datasets.store import broadcast_domain


@dataclass
class SquaredError:
    """Streaming sums of squared errors; :meth:`result` gives the metrics."""

    channels: tuple[str, ...]
    sums: dict[str, np.ndarray] = field(default_factory=dict)

    def update(
        self,
        imputed: np.ndarray,
        truth: np.ndarray,
        mask: np.ndarray,
        std: np.ndarray,
        domain: np.ndarray | None = None,
    ) -> None:
        """imputed, truth ``(N, T, C, H, W)`` physical units; mask bool ``(N, T, H, W)``; std ``(C,)``;
        domain bool ``(H, W)``, or ``(N, H, W)`` each sample's own: points outside it are not
        scored (None: every point is)."""
        if imputed.shape != truth.shape:
            raise ValueError(f"imputed shape {imputed.shape} != truth shape {truth.shape}")
        inside = np.ones(imputed.shape[-2:], bool) if domain is None else domain
        inside = broadcast_domain(inside, imputed.shape)
        if not np.isfinite(imputed[inside]).all():
            raise ValueError("imputed field has NaN or inf values")
        err = np.where(inside, (imputed - truth) / std.reshape(1, 1, -1, 1, 1), 0.0) ** 2
        hidden = np.broadcast_to(~mask[:, :, None], err.shape) & inside
        per_channel_all = err.sum(axis=(0, 1, 3, 4))
        per_channel_hidden = np.where(hidden, err, 0.0).sum(axis=(0, 1, 3, 4))
        n_all = inside.sum(axis=(0, 1, 3, 4)).astype(float)
        n_hidden = hidden.sum(axis=(0, 1, 3, 4)).astype(float)
        for key, value in (
            ("all", per_channel_all),
            ("hidden", per_channel_hidden),
            ("n_all", n_all),
            ("n_hidden", n_hidden),
        ):
            self.sums[key] = self.sums.get(key, 0.0) + value

    def add(self, values: dict[str, np.ndarray]) -> None:
        """Per-sample extra metrics (e.g. physics scores); reported as their mean ``test_<name>``."""
        for name, v in values.items():
            self.sums[f"extra:{name}"] = self.sums.get(f"extra:{name}", 0.0) + float(np.sum(v))
            self.sums[f"count:{name}"] = self.sums.get(f"count:{name}", 0.0) + float(np.size(v))

    def merge(self, other: SquaredError) -> None:
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def result(self) -> dict[str, float]:
        s = self.sums
        out = {
            "test_mse": float(s["all"].sum() / s["n_all"].sum()),
            "test_mse_unobserved": float(s["hidden"].sum() / max(s["n_hidden"].sum(), 1.0)),
        }
        for key, total in s.items():
            if key.startswith("extra:"):
                name = key[len("extra:") :]
                out[f"test_{name}"] = float(total / max(s[f"count:{name}"], 1.0))
        if len(self.channels) > 1:
            for i, name in enumerate(self.channels):
                out[f"test_mse_{name}"] = float(s["all"][i] / s["n_all"][i])
        return out
