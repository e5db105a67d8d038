"""Verification of an ensemble of imputations, in weather-forecast verification's conventions.

Given members ``x_1 … x_K`` of an imputation and a target ``y`` at the points to score (the
truth of unobserved points, or held-out observed values), accumulated batch by batch:

- **spread–skill ratio** ``√((K+1)/K) · √(mean s²) / √(mean (x̄ − y)²)`` with ``s²`` the unbiased
  member variance (Fortin et al. 2014; WeatherBench 2's convention): 1 for members
  exchangeable with the target, below 1 for an under-dispersed ensemble;
- **CRPS** of the K-member ensemble, from ``scoringrules`` with its *fair* estimator (unbiased
  for the CRPS of the distribution the members are drawn from, so ensembles of different K
  compare; with one member it is the absolute error);
- **rank histogram**: counts of the target's rank among the members (ties split at random);
  flat when members and target are exchangeable, U-shaped when under-dispersed;
- **coverage** of the central ``level`` prediction interval ``x̄ ± t_{K−1}((1+level)/2) ·
  s · √((K+1)/K)``: the interval a new draw of the members' distribution falls in with
  probability ``level`` (exactly, for Gaussian members); an empirical-quantile interval of 10
  members cannot reach 90 % (at most 9/11 for a perfect ensemble);
- **calibrated coverage**: of ``x̄ ± q_c(level) · σ`` with ``σ`` the members' standard deviation
  (as served, ``ddof = 0``) and ``q_c`` a per-channel inflation (split-conformal, fitted
  elsewhere on other points).

Scores are in units of ``scale`` per channel (the training standard deviation, as MSE is).

Why ``scoringrules`` rather than ``xskillscore``: it scores plain arrays with the ensemble on one
axis (no xarray objects to build per batch), depends on numpy and scipy only, and offers the
fair CRPS estimator by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scoringrules
from scipy.stats import t as student_t

LEVELS = (0.5, 0.9)


def prediction_factor(k: int, level: float) -> float:
    """``t_{K−1}((1+level)/2) · √((K+1)/K)``: half-width of the ``level`` prediction interval in
    units of the unbiased member standard deviation (0 for a single member)."""
    if k < 2:
        return 0.0
    return float(student_t.ppf(0.5 + level / 2, df=k - 1) * np.sqrt((k + 1) / k))


def points_of(
    members: np.ndarray, target: np.ndarray, points: np.ndarray, scale: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members ``(B, K, C, T, H, W)``, target ``(B, C, T, H, W)`` and bool points ``(B, T, H, W)``
    (shared by the channels) → ``(N, K)`` members, ``(N,)`` targets and ``(N,)`` channel index at
    the scored points, each channel divided by ``scale`` ``(C,)``."""
    b, _, c = members.shape[:3]
    if target.shape != (b, *members.shape[2:]) or points.shape != (b, *members.shape[3:]):
        raise ValueError(
            f"members {members.shape}, target {target.shape}, points {points.shape} do not match "
            "(B, K, C, T, H, W), (B, C, T, H, W), (B, T, H, W)"
        )
    scale = np.ones(c) if scale is None else np.asarray(scale, np.float64).reshape(-1)
    shape = (1, c) + (1,) * (target.ndim - 2)
    sel = np.broadcast_to(points[:, None], target.shape)
    m = (np.moveaxis(members, 1, -1) / scale.reshape(*shape, 1))[sel]
    y = (target / scale.reshape(shape))[sel]
    ch = np.broadcast_to(np.arange(c).reshape(shape), target.shape)[sel]
    return m.astype(np.float64), y.astype(np.float64), ch


class ChannelSums:
    """Per-channel streaming sums and the scores read from them, shared by the ensemble and the
    Gaussian verification (so that their tables line up). A subclass keeps ``channels``,
    ``levels`` and ``sums``, fills ``sums["n"]``, ``"sq_err"``, ``"var"``, ``"crps"``,
    ``"cover:LEVEL"`` (and ``"calibrated:LEVEL"``) through :meth:`_add`, and gives the
    :meth:`spread_factor` of its spread."""

    channels: tuple[str, ...]
    levels: tuple[float, ...]
    sums: dict[str, np.ndarray]

    def _add(self, key: str, per_point: np.ndarray, ch: np.ndarray) -> None:
        per_channel = np.bincount(ch, weights=per_point, minlength=len(self.channels))
        self.sums[key] = self.sums.get(key, 0.0) + per_channel

    @property
    def count(self) -> int:
        return int(np.sum(self.sums.get("n", 0.0)))

    def spread_factor(self) -> float:
        """The factor that makes the root mean variance comparable with the RMSE."""
        raise NotImplementedError

    def spread_skill(self, channel: int | None = None) -> float:
        """``spread_factor · √(mean s²) / RMSE`` over all channels (or one)."""
        pick = (lambda v: v.sum()) if channel is None else (lambda v: v[channel])
        rmse = np.sqrt(pick(self.sums["sq_err"]) / pick(self.sums["n"]))
        spread = np.sqrt(pick(self.sums["var"]) / pick(self.sums["n"]))
        return float(self.spread_factor() * spread / max(rmse, 1e-30))

    def result(self, prefix: str = "test", suffix: str = "") -> dict[str, float]:
        """``{prefix}_spread_skill{suffix}``, ``_crps``, ``_coverage_50``, ``_coverage_90`` and,
        when calibrated, ``{prefix}_calibrated_coverage_90{suffix}``; {} if no point was scored."""
        if self.count == 0:
            return {}
        n = self.sums["n"].sum()
        out = {
            f"{prefix}_spread_skill{suffix}": self.spread_skill(),
            f"{prefix}_crps{suffix}": float(self.sums["crps"].sum() / n),
        }
        for level in self.levels:
            pct = round(100 * level)
            out[f"{prefix}_coverage_{pct}{suffix}"] = float(self.sums[f"cover:{level}"].sum() / n)
            if f"calibrated:{level}" in self.sums:
                value = self.sums[f"calibrated:{level}"].sum() / n
                out[f"{prefix}_calibrated_coverage_{pct}{suffix}"] = float(value)
        if len(self.channels) > 1:
            for i, name in enumerate(self.channels):
                out[f"{prefix}_spread_skill_{name}{suffix}"] = self.spread_skill(i)
        return out


@dataclass
class EnsembleScores(ChannelSums):
    """Streaming sums of the ensemble scores of K-member imputations.

    Attributes:
        channels: channel names (per-channel spread–skill when more than one).
        k: ensemble size K.
        levels: central interval levels whose coverage is counted.
        seed: seed of the generator that breaks rank ties.
    """

    channels: tuple[str, ...]
    k: int
    levels: tuple[float, ...] = LEVELS
    seed: int = 0
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    ranks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        if self.ranks is None:
            self.ranks = np.zeros(self.k + 1, dtype=np.int64)

    def update(
        self,
        members: np.ndarray,
        target: np.ndarray,
        points: np.ndarray,
        *,
        scale: np.ndarray | None = None,
        calibration: dict[float, np.ndarray] | None = None,
    ) -> None:
        """Score ``members`` ``(B, K, C, T, H, W)`` against ``target`` ``(B, C, T, H, W)`` at the
        True points of ``points`` ``(B, T, H, W)``; ``calibration``: level → ``q`` per channel."""
        if members.shape[1] != self.k:
            raise ValueError(f"members have K={members.shape[1]}, the accumulator K={self.k}")
        m, y, ch = points_of(members, target, points, scale)
        if y.size == 0:
            return
        mean = m.mean(axis=1)
        var = m.var(axis=1, ddof=1) if self.k > 1 else np.zeros_like(mean)
        err = np.abs(mean - y)
        self._add("n", np.ones_like(y), ch)
        self._add("sq_err", err**2, ch)
        self._add("var", var, ch)
        if self.k > 1:
            crps = scoringrules.crps_ensemble(y, m, m_axis=-1, estimator="fair", backend="numpy")
        else:
            crps = np.abs(m[:, 0] - y)
        self._add("crps", np.asarray(crps, np.float64), ch)
        sd, served = np.sqrt(var), m.std(axis=1)  # served: the spread an answer carries
        for level in self.levels:
            self._add(f"cover:{level}", (err <= prediction_factor(self.k, level) * sd) * 1.0, ch)
            if calibration is not None:
                q = np.asarray(calibration[level], np.float64)[ch]
                self._add(f"calibrated:{level}", (err <= q * served) * 1.0, ch)
        below = (m < y[:, None]).sum(axis=1)
        ties = (m == y[:, None]).sum(axis=1)
        rank = below + self._rng.integers(0, ties + 1)
        self.ranks += np.bincount(rank, minlength=self.k + 1)

    def merge(self, other: EnsembleScores) -> None:
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.ranks += other.ranks

    def spread_factor(self) -> float:
        """``√((K+1)/K)``: the spread of a K-member ensemble made comparable with the RMSE."""
        return float(np.sqrt((self.k + 1) / self.k))
