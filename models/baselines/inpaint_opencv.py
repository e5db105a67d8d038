"""Fast Marching (Telea 2004) and Navier–Stokes (Bertalmio et al. 2001) inpainting baselines.

Paper Sec. 4.1: OpenCV's ``cv2.inpaint`` with ``INPAINT_TELEA`` / ``INPAINT_NS``, applied frame
by frame and channel by channel. References: A. Telea, "An Image Inpainting Technique Based on
the Fast Marching Method", J. Graphics Tools 9(1), 2004; M. Bertalmio, A. L. Bertozzi,
G. Sapiro, "Navier-Stokes, Fluid Dynamics, and Image and Video Inpainting", CVPR 2001.
"""

from __future__ import annotations

import cv2
import numpy as np

from incdyn.models.baselines.sample_checks import check_sample

_SCALE_MAX = 255.0  # TELEA's additive offset is O(1): work on frames spanning [0, 255]


def inpaint_telea(values: np.ndarray, mask: np.ndarray, *, radius: float = 3.0) -> np.ndarray:
    """Fill unobserved points with OpenCV's fast-marching inpainting (Telea 2004).

    Args:
        values: (T, C, H, W) float32; entries at unobserved points may be anything, NaN included.
        mask: (T, H, W) bool, True = observed, shared by all channels.
        radius: neighbourhood radius in pixels (``inpaintRadius``).

    Returns:
        (T, C, H, W) float32: observed points bit-for-bit unchanged, unobserved points filled.
        A frame with no observed point is copied from the nearest frame in time that has one
        (the earlier on a tie); a sample with no observed point at all is filled with zeros.
    """
    return _inpaint(values, mask, radius=radius, flags=cv2.INPAINT_TELEA)


def inpaint_ns(values: np.ndarray, mask: np.ndarray, *, radius: float = 3.0) -> np.ndarray:
    """Fill unobserved points with OpenCV's Navier–Stokes inpainting (Bertalmio et al. 2001).

    Same contract as :func:`inpaint_telea`, including the handling of NaNs, of frames with no
    observed point (copied from the nearest such frame in time, the earlier on a tie) and of
    samples with no observed point (zeros).
    """
    return _inpaint(values, mask, radius=radius, flags=cv2.INPAINT_NS)


def _inpaint(values: np.ndarray, mask: np.ndarray, *, radius: float, flags: int) -> np.ndarray:
    check_sample(values, mask)
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    n_frames, n_channels = values.shape[:2]
    has_obs = mask.reshape(n_frames, -1).any(axis=1)  # (T,)
    if not has_obs.any():
        return np.where(mask[:, None], values, np.float32(0.0))
    filled = np.zeros_like(values)
    for t in np.flatnonzero(has_obs):
        known = mask[t]
        if known.all():
            filled[t] = values[t]
            continue
        holes = (~known).astype(np.uint8)  # 1 marks the points OpenCV fills
        for c in range(n_channels):
            inpainted = _inpaint_frame(values[t, c], known, holes, radius, flags)
            filled[t, c] = np.where(known, values[t, c], inpainted)
    filled = filled[_nearest_observed_frame(has_obs)]  # empty frames copy a completed frame
    return np.where(mask[:, None], values, filled)


def _inpaint_frame(
    frame: np.ndarray, known: np.ndarray, holes: np.ndarray, radius: float, flags: int
) -> np.ndarray:
    """Inpaint one (H, W) frame after an affine map of its observed range onto [0, 255]."""
    observed = frame[known].astype(np.float64)
    lo, hi = observed.min(), observed.max()
    if not hi > lo:  # constant frame: the only consistent fill is the constant
        return np.full(frame.shape, frame[known][0], dtype=np.float32)
    scale = _SCALE_MAX / (hi - lo)
    # Unobserved entries (maybe NaN) are replaced by the observed mean: OpenCV reads them.
    source = np.where(known, frame.astype(np.float64), observed.mean())
    scaled = ((source - lo) * scale).astype(np.float32)
    result = cv2.inpaint(scaled, holes, float(radius), flags)
    return (result.astype(np.float64) / scale + lo).astype(np.float32)


def _nearest_observed_frame(has_obs: np.ndarray) -> np.ndarray:
    """(T,) index of the nearest frame with an observation; the earlier one on a tie."""
    frames = np.flatnonzero(has_obs)
    dist = np.abs(np.arange(has_obs.size)[:, None] - frames[None, :])
    return frames[dist.argmin(axis=1)]  # argmin keeps the first, i.e. earlier, minimum
