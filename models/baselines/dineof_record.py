"""DINEOF over a whole record, as its users run it: one time × space reconstruction of every
frame (or of a time range), the mode count chosen by its own cross-validation.

The record is read in blocks of frames, and only points inside the domain are kept: the matrix
held is ``frames × domain points`` per channel (float64), the one an EOF decomposition of the
record needs; nothing larger is ever held. The fill itself is :func:`dineof_matrix` (Beckers &
Rixen 2003; Alvera-Azcárate et al. 2005).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from incdyn.models.baselines.dineof import dineof_matrix


@dataclass(frozen=True)
class RecordDineof:
    """Attributes:
    filled: float32 ``(T, C, S)`` at the domain points (observed values unchanged).
    modes: the mode count kept, per channel.
    cv_error: the cross-validation error per mode count, per channel.
    """

    filled: np.ndarray
    modes: tuple[int, ...]
    cv_error: tuple[dict[int, float], ...]


def dineof_record(
    read: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    frames: int,
    inside: np.ndarray,
    *,
    block: int = 64,
    rng: np.random.Generator | None = None,
    max_modes: int | None = None,
) -> RecordDineof:
    """Fill a whole record by DINEOF, channel by channel.

    Args:
        read: ``read(first, count)`` → ``(values (count, C, H, W), observed (count, H, W))``:
            the frames' values (anything at unobserved points) and which points may be used.
        frames: the record's frames; inside: bool ``(H, W)``, the domain.
        block: frames per read.
        rng: draws the cross-validation points (default: seeded with 0).
        max_modes: most EOF modes tried (default: DINEOF's own limit).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    cols = np.flatnonzero(inside.ravel())
    matrix: np.ndarray | None = None
    for first in range(0, frames, block):
        count = min(block, frames - first)
        values, observed = read(first, count)
        if matrix is None:
            matrix = np.empty((values.shape[1], frames, cols.size))
        flat = values.reshape(count, values.shape[1], -1)[:, :, cols]
        seen = observed.reshape(count, -1)[:, cols]
        matrix[:, first : first + count] = np.where(seen[:, None], flat, np.nan).transpose(1, 0, 2)
    assert matrix is not None
    out = np.empty((frames, matrix.shape[0], cols.size), np.float32)
    modes, errors = [], []
    for c in range(matrix.shape[0]):
        result = dineof_matrix(matrix[c], rng=rng, max_modes=max_modes)
        out[:, c] = result.filled
        modes.append(result.modes)
        errors.append(result.cv_error)
    return RecordDineof(out, tuple(modes), tuple(errors))
