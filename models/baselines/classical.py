"""Registry of the paper's classical imputation baselines (Sec. 4.1) and a batch driver.

Temporal Consistency (nearest observation in time, then inverse-distance weighting), Fast
Marching inpainting (Telea 2004), Navier–Stokes inpainting (Bertalmio et al. 2001) and DINEOF
(Beckers & Rixen 2003), the EOF gap filler of oceanography and meteorology.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from incdyn.models.baselines.dineof import dineof
from incdyn.models.baselines.inpaint_opencv import inpaint_ns, inpaint_telea
from incdyn.models.baselines.temporal_consistency import temporal_consistency

CLASSICAL: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "temporal": temporal_consistency,
    "telea": inpaint_telea,
    "inpaint_ns": inpaint_ns,
    "dineof": dineof,
}


def impute_batch(name: str, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Impute every sample of a batch with the classical method ``name``.

    Args:
        name: a key of :data:`CLASSICAL`.
        values: (N, T, C, H, W) float32; entries at unobserved points may be anything.
        mask: (N, T, H, W) bool, True = observed, shared by all channels.

    Returns:
        (N, T, C, H, W) float32: observed points unchanged, unobserved points filled.

    Raises:
        ValueError: unknown ``name`` (the message lists the allowed ones), or arrays of the
            wrong type, rank, dtype or mismatched shapes.
    """
    if name not in CLASSICAL:
        raise ValueError(f"unknown classical method {name!r}; allowed: {sorted(CLASSICAL)}")
    if not isinstance(values, np.ndarray) or not isinstance(mask, np.ndarray):
        raise ValueError(
            f"values and mask must be numpy arrays, got {type(values).__name__} "
            f"and {type(mask).__name__}"
        )
    if values.ndim != 5:
        raise ValueError(f"values must have shape (N, T, C, H, W), got shape {values.shape}")
    if values.dtype != np.float32:
        raise ValueError(f"values must have dtype float32, got {values.dtype}")
    if mask.dtype != np.bool_:
        raise ValueError(f"mask must have dtype bool (True = observed), got {mask.dtype}")
    n, t, _, h, w = values.shape
    if mask.shape != (n, t, h, w):
        raise ValueError(
            f"mask shape {mask.shape} does not match values (N, T, H, W) = {(n, t, h, w)}"
        )
    impute = CLASSICAL[name]
    out = np.empty_like(values)
    for i in range(n):
        out[i] = impute(values[i], mask[i])
    return out
