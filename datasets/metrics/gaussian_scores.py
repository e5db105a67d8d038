"""Verification of a Gaussian predictive distribution ``N(μ, σ²)`` per point, under the names of
the ensemble verification (:mod:`incdyn.datasets.metrics.ensemble_scores`) so that tables line
up: a method that returns a mean and an error variance (DINCAE, Barth et al. 2020, 2022) is
scored at the same points as an ensemble.

- **spread–skill** ``√(mean σ²) / √(mean (μ − y)²)``: 1 when the variance matches the error;
- **CRPS** of the Gaussian, in closed form (``scoringrules.crps_normal``; Gneiting & Raftery
  2007, Eq. 21);
- **coverage** of the central ``level`` interval ``μ ± z((1+level)/2) · σ`` (1.645 σ at 90 %);
- **calibrated coverage** of ``μ ± q_c(level) · σ`` with a per-channel inflation ``q_c``
  (split-conformal, fitted elsewhere on other points).

Scores are in units of ``scale`` per channel (the training standard deviation, as MSE is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scoringrules
from scipy.stats import norm

from incdyn.datasets.metrics.ensemble_scores import LEVELS, ChannelSums, points_of


@dataclass
class GaussianScores(ChannelSums):
    """Streaming sums of the scores of Gaussian predictions.

    Attributes:
        channels: channel names (per-channel spread–skill when more than one).
        levels: central interval levels whose coverage is counted.
    """

    channels: tuple[str, ...]
    levels: tuple[float, ...] = LEVELS
    sums: dict[str, np.ndarray] = field(default_factory=dict)

    def update(
        self,
        mean: np.ndarray,
        var: np.ndarray,
        target: np.ndarray,
        points: np.ndarray,
        *,
        scale: np.ndarray | None = None,
        calibration: dict[float, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score ``N(mean, var)`` (each ``(B, C, T, H, W)``) against ``target`` at the True
        points of ``points`` ``(B, T, H, W)``; ``calibration``: level → ``q`` per channel.
        Returns ``|μ − y|``, ``σ`` and the channel index of the scored points, each ``(N,)``."""
        mu, y, ch = points_of(mean[:, None], target, points, scale)
        s2, _, _ = points_of(var[:, None], target, points, None if scale is None else scale**2)
        mu, sd = mu[:, 0], np.sqrt(np.maximum(s2[:, 0], 0.0))
        err = np.abs(mu - y)
        if y.size == 0:
            return err, sd, ch
        self._add("n", np.ones_like(y), ch)
        self._add("sq_err", err**2, ch)
        self._add("var", sd**2, ch)
        crps = scoringrules.crps_normal(y, mu, sd, backend="numpy")
        self._add("crps", np.asarray(crps, np.float64), ch)
        for level in self.levels:
            self._add(f"cover:{level}", (err <= norm.ppf(0.5 + level / 2) * sd) * 1.0, ch)
            if calibration is not None:
                q = np.asarray(calibration[level], np.float64)[ch]
                self._add(f"calibrated:{level}", (err <= q * sd) * 1.0, ch)
        return err, sd, ch

    def spread_factor(self) -> float:
        """1: a predicted σ is compared with the RMSE as it is (no finite-ensemble factor)."""
        return 1.0
