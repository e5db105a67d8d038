"""Rank agreement of the methods' held-out and truth scores: Spearman's rank correlation
(Spearman 1904) between each method's mean held-out MSE and its mean truth MSE in one setting.

Every choice is made on held-out observed points (Beckers & Rixen 2003's cross-validation
points), without truth; where a setting has truth too, this says how far the held-out ranking of
the methods is the truth ranking (1: the same order, -1: reversed). Scores are means over the
seeds of a method; complete-data oracles are left out by the caller (they are shown, never
judged). Fewer than three methods with both scores give no value.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from scipy.stats import spearmanr

MIN_METHODS = 3  # fewer methods make no ranking worth a coefficient
# parent-run metric -> (held-out score, truth score) of the methods' runs
PAIRS = {
    "spearman_heldout_truth": ("test_heldout_mse", "test_mse"),
    "spearman_val_heldout_truth": ("val_heldout_mse", "val_mse"),
}


@dataclass(frozen=True)
class RankAgreement:
    """Spearman's ρ of ``methods`` methods' held-out and truth scores."""

    rho: float
    methods: int

    def text(self) -> str:
        return (
            f"held-out vs truth rank agreement (Spearman, {self.methods} methods): {self.rho:.2f}"
        )


def _means(rows: Iterable[Mapping], key: str, exclude: Collection[str]) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for row in rows:
        value = row.get(key)
        if row["method"] in exclude or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            values.setdefault(row["method"], []).append(float(value))
    return {m: statistics.fmean(v) for m, v in values.items()}


def rank_agreement(
    rows: Iterable[Mapping],
    heldout: str = "test_heldout_mse",
    truth: str = "test_mse",
    *,
    exclude: Collection[str] = (),
) -> RankAgreement | None:
    """Spearman's ρ over methods of the mean ``heldout`` and mean ``truth`` scores of ``rows``
    (one per run: ``method`` and the metrics), methods in ``exclude`` left out; None with fewer
    than :data:`MIN_METHODS` methods holding both, or when a score ties every method."""
    rows = list(rows)
    held, true = _means(rows, heldout, exclude), _means(rows, truth, exclude)
    methods = [m for m in held if m in true]
    a, b = [held[m] for m in methods], [true[m] for m in methods]
    if len(methods) < MIN_METHODS or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return RankAgreement(float(spearmanr(a, b).statistic), len(methods))


def agreement_metrics(rows: Iterable[Mapping], exclude: Collection[str] = ()) -> dict[str, float]:
    """The parent run's metrics (:data:`PAIRS`): each coefficient the rows allow."""
    rows = list(rows)
    out = {}
    for name, (heldout, truth) in PAIRS.items():
        if (agreement := rank_agreement(rows, heldout, truth, exclude=exclude)) is not None:
            out[name] = agreement.rho
    return out
