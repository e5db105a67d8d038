"""Held-out observed points in the shape of a record's own gaps: another frame's gap pattern is
transplanted onto a frame's observed points.

For frame ``t`` a donor frame is drawn (seeded by ``(seed, t)``, so the choice is the same
whichever part of the record is being processed); the connected gap regions of the donor that
cover observed points of ``t`` are taken in a seeded random order until ``fraction`` of the
frame's observed points are withheld (never all: at least one observed point stays).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def donor_frame(frame: int, frames: int, seed: int) -> int:
    """The frame whose gaps are transplanted onto ``frame`` (another one when there is one)."""
    if frames < 2:
        return frame
    rng = np.random.default_rng([seed, frame, 1])
    other = int(rng.integers(frames - 1))
    return other + (other >= frame)


def transplant_gaps(
    observed: np.ndarray, donor_gaps: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Points of ``observed`` ``(H, W)`` withheld in the shape of ``donor_gaps`` ``(H, W)``.

    Whole connected regions of ``donor_gaps & observed`` are withheld until ``fraction`` of the
    observed points are (the last region may overshoot); the result never holds every
    observed point. bool ``(H, W)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    n = int(observed.sum())
    held = np.zeros(observed.shape, bool)
    if n < 2:
        return held
    labels, count = ndimage.label(donor_gaps & observed)
    target = fraction * n
    for region in rng.permutation(np.arange(1, count + 1)):
        if held.sum() >= target:
            break
        candidate = held | (labels == region)
        if candidate.sum() >= n:
            break
        held = candidate
    return held


def transplanted_holdout(
    observed: np.ndarray,
    frames: np.ndarray,
    donor_observed: np.ndarray,
    inside: np.ndarray,
    fraction: float,
    seed: int,
) -> np.ndarray:
    """Held-out points of frames ``frames`` (record indices) with observations ``observed``
    ``(T, H, W)``: ``donor_observed`` ``(T, H, W)`` are the observations of each frame's donor
    (:func:`donor_frame`), ``inside`` ``(H, W)`` the domain. bool ``(T, H, W)``."""
    out = np.zeros(observed.shape, bool)
    for i, t in enumerate(frames):
        rng = np.random.default_rng([seed, int(t), 2])
        out[i] = transplant_gaps(observed[i], inside & ~donor_observed[i], fraction, rng)
    return out
