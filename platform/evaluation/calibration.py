"""Split-conformal calibration of the ensemble spread, per channel, and the intervals it gives.

The K context masks average estimates of a conditional mean (Sec. 3.3); their spread is not a
posterior spread and is likely too small. On points the model did not see but whose values are
known — held-out observed points of the validation split, never the truth — the conformity
score ``|x̄ − y| / σ`` (``σ`` the members' standard deviation as served) is collected per
channel; the interval ``x̄ ± q_c(level) · σ`` with ``q_c(level)`` the split-conformal quantile
``⌈(n+1)·level⌉ / n`` of the scores then covers a new point of the same kind with probability
at least ``level``. The inflation is stored as ``calibration.json`` beside the checkpoint (and
in the MLflow run), applied at test and by ``incdyn serve``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CALIBRATION_FILE = "calibration.json"
GRID = tuple(round(0.01 * i, 2) for i in range(1, 100))  # levels stored: 0.01 … 0.99


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile of ``scores`` at ``level``: the ``⌈(n+1)·level⌉``-th smallest
    (``inf`` when ``n`` is too small for that level)."""
    s = np.sort(np.asarray(scores, np.float64)[np.isfinite(scores)])
    rank = math.ceil((s.size + 1) * level)
    return float(s[rank - 1]) if 1 <= rank <= s.size else math.inf


@dataclass(frozen=True)
class Calibration:
    """Per-channel spread inflation at every level of ``levels``.

    Attributes:
        channels: channel names, in the model's order.
        levels: central interval levels (increasing).
        q: ``q[c][i]``: the inflation of channel ``c`` at ``levels[i]``.
        n: scored points per channel.
        k: ensemble size of the spreads it was fitted on.
        sampler: the sampler of those spreads.
        fitted_on: which points (e.g. ``val held-out observed points``).
    """

    channels: tuple[str, ...]
    levels: tuple[float, ...]
    q: tuple[tuple[float, ...], ...]
    n: tuple[int, ...]
    k: int
    sampler: str
    fitted_on: str

    def inflation(self, level: float) -> np.ndarray:
        """``q`` per channel ``(C,)`` at ``level`` (linear between stored levels)."""
        lo, hi = self.levels[0], self.levels[-1]
        if not lo <= level <= hi:
            raise ValueError(f"level={level} is outside the calibrated levels [{lo}, {hi}]")
        return np.array([np.interp(level, self.levels, row) for row in self.q])

    def at(self, levels: tuple[float, ...]) -> dict[float, np.ndarray]:
        return {level: self.inflation(level) for level in levels}

    def to_json(self) -> str:
        return json.dumps({"kind": "split-conformal", **asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        raw = json.loads(text)
        raw.pop("kind", None)
        return cls(
            channels=tuple(raw["channels"]),
            levels=tuple(float(v) for v in raw["levels"]),
            q=tuple(tuple(float(v) for v in row) for row in raw["q"]),
            n=tuple(int(v) for v in raw["n"]),
            k=int(raw["k"]),
            sampler=str(raw["sampler"]),
            fitted_on=str(raw["fitted_on"]),
        )


def fit_calibration(
    abs_error: np.ndarray,
    spread: np.ndarray,
    channel: np.ndarray,
    channels: tuple[str, ...],
    *,
    k: int,
    sampler: str,
    fitted_on: str,
    levels: tuple[float, ...] = GRID,
) -> Calibration | None:
    """Fit the per-channel inflation on any set of points: ``|x̄ − y|``, ``σ`` and the channel
    index, each ``(N,)``. Points with ``σ = 0`` are left out; None when a channel has no point
    left or a level needs more points than it has (e.g. a one-member "ensemble")."""
    keep = spread > 0
    q, n = [], []
    for c in range(len(channels)):
        sel = keep & (channel == c)
        scores = abs_error[sel] / spread[sel]
        row = [conformal_quantile(scores, level) for level in levels]
        if not scores.size or not all(math.isfinite(v) for v in row):
            return None
        q.append(tuple(row))
        n.append(int(scores.size))
    return Calibration(tuple(channels), tuple(levels), tuple(q), tuple(n), k, sampler, fitted_on)


def save_calibration(directory: str | Path, calibration: Calibration) -> Path:
    path = Path(directory) / CALIBRATION_FILE
    path.write_text(calibration.to_json())
    return path


def load_calibration(directory: str | Path) -> Calibration | None:
    """The calibration stored beside a checkpoint, or None when it carries none."""
    path = Path(directory) / CALIBRATION_FILE
    return Calibration.from_json(path.read_text()) if path.is_file() else None


def interval(
    mean: np.ndarray, spread: np.ndarray, q: np.ndarray, channel_axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """``mean ∓ q_c · spread`` with ``q`` ``(C,)`` along ``channel_axis``: (lower, upper)."""
    shape = [1] * mean.ndim
    shape[channel_axis] = -1
    half = np.asarray(q, np.float64).reshape(shape) * spread
    return (mean - half).astype(mean.dtype), (mean + half).astype(mean.dtype)


def served_inflation(
    calibration: Calibration | None, level: float, k: int, channels: int
) -> np.ndarray:
    """``q`` per channel ``(C,)`` of the served interval ``mean ± q · spread`` at ``level``: the
    calibration's, or without one the Gaussian prediction interval of ``k`` members
    (``spread`` being their ``ddof = 0`` standard deviation; 0 for one member)."""
    if calibration is not None:
        return calibration.inflation(level)
    from incdyn.datasets.metrics.ensemble_scores import prediction_factor

    factor = prediction_factor(k, level) * math.sqrt(k / (k - 1)) if k > 1 else 0.0
    return np.full(channels, factor)
