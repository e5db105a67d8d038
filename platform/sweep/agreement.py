"""Rank agreement of two selection criteria across a sweep's configurations (Spearman's ρ).

On simulated data both the truth-free criterion (``val_heldout_mse``) and the truth's
(``val_mse``) exist; their rank correlation across the grid shows whether choosing without
truth chooses as the truth would.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of paired values (ties get average ranks); NaN pairs are
    dropped, and fewer than 3 pairs or a constant side give NaN."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return math.nan
    ra, rb = (rankdata(np.array(side, dtype=float)) for side in zip(*pairs, strict=True))
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])
