"""Temporal Consistency baseline (paper Sec. 4.1): nearest-in-time fill, then spatial IDW.

A missing point takes its value from the nearest frame in time where that point is observed.
A point never observed in the sample (static masks) takes the inverse-distance-weighted mean
(Shepard 1968, "A two-dimensional interpolation function for irregularly-spaced data") of the
k nearest points in the same frame that have a value there.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree  # scipy comes with mlflow (which pins scipy<2)

from incdyn.models.baselines.sample_checks import check_sample

IDW_NEIGHBOURS = 8  # k nearest points that carry a value
IDW_POWER = 2.0  # weight = distance ** -IDW_POWER


def temporal_consistency(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill each missing point from the nearest frame in time where it is observed.

    Args:
        values: (T, C, H, W) float32; entries at unobserved points may be anything, NaN included.
        mask: (T, H, W) bool, True = observed, shared by all channels.

    Returns:
        (T, C, H, W) float32: observed points bit-for-bit unchanged, unobserved points filled.

    Rules:
        - Ties in time (observed as far before as after) take the earlier frame.
        - A point never observed in the sample gets, in each frame t, the inverse-distance
          weighted mean (k = ``IDW_NEIGHBOURS``, power ``IDW_POWER``, Euclidean pixel distance)
          of the k nearest points observed in at least one frame, valued as they are in frame t
          (observed there, or filled in time). With a static mask this is exactly "the nearest
          observed points of the same frame".
        - A sample with no observed point at all is filled with zeros.
    """
    check_sample(values, mask)
    n_frames = values.shape[0]
    ever = mask.any(axis=0)  # (H, W)
    if not ever.any():
        return np.where(mask[:, None], values, np.float32(0.0))

    # 1. Nearest observed frame per point: last observed at or before t, first at or after t.
    t = np.arange(n_frames)[:, None, None]
    before = np.maximum.accumulate(np.where(mask, t, -1), axis=0)
    after = np.minimum.accumulate(np.where(mask, t, n_frames)[::-1], axis=0)[::-1]
    take_before = (before >= 0) & ((after >= n_frames) | (t - before <= after - t))
    source = np.where(take_before, before, after)
    source = np.where(ever, source, 0)  # never-observed points are overwritten in step 2
    index = np.broadcast_to(source[:, None], values.shape)
    filled = np.take_along_axis(values, index, axis=0)

    # 2. Never-observed points: IDW over the k nearest points that carry a value (all frames).
    if not ever.all():
        donors = np.argwhere(ever)  # (D, 2)
        targets = np.argwhere(~ever)  # (M, 2)
        k = min(IDW_NEIGHBOURS, len(donors))
        dist, nearest = cKDTree(donors).query(targets, k=k)
        dist, nearest = dist.reshape(len(targets), k), nearest.reshape(len(targets), k)
        weights = dist**-IDW_POWER  # distances are >= 1: targets and donors are distinct pixels
        weights /= weights.sum(axis=1, keepdims=True)  # (M, k)
        rows, cols = donors[nearest, 0], donors[nearest, 1]  # (M, k) each
        neighbour_values = filled[:, :, rows, cols].astype(np.float64)  # (T, C, M, k)
        idw = (neighbour_values * weights).sum(axis=-1)  # (T, C, M)
        filled[:, :, targets[:, 0], targets[:, 1]] = idw.astype(np.float32)

    return np.where(mask[:, None], values, filled)
