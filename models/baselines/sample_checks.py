"""Input checks shared by the classical baselines: one sample ``(T, C, H, W)`` and its mask."""

from __future__ import annotations

import numpy as np


def describe(array: object) -> str:
    if isinstance(array, np.ndarray):
        return f"shape {array.shape} dtype {array.dtype}"
    return type(array).__name__


def check_sample(values: np.ndarray, mask: np.ndarray) -> None:
    """Raise ``ValueError`` unless values is ``(T, C, H, W)`` float32 and mask bool ``(T, H, W)``."""
    if not isinstance(values, np.ndarray) or values.ndim != 4 or values.dtype != np.float32:
        raise ValueError(f"values must be a (T, C, H, W) float32 array, got {describe(values)}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array, got {describe(mask)}")
    t, _, h, w = values.shape
    if mask.shape != (t, h, w):
        raise ValueError(f"mask shape {mask.shape} does not match values (T, H, W) = {(t, h, w)}")
