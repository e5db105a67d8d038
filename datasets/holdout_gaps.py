"""Held-out observed points shaped like the real gaps (``evaluation.holdout.shape: gaps``).

Small square units favour local methods: a 3×3 patch is filled from its rim, a cloud gap is
not. Here a frame's held-out points are instead the observed points under a *transplanted gap
pattern* (the cross-validation points of Beckers & Rixen 2003, DINEOF, and of Barth et al.
2020, DINCAE: gaps of another image laid over the observed points): whole connected regions of
a donor's gaps are withheld until the held-out share reaches the spec's fraction
(:func:`~incdyn.datasets.gap_transplant.transplant_gaps`; the last region may overshoot, never
every observed point). Whole gap regions overshoot a small target on a small grid (a 32×32
cloud gap region can hold more points than a tenth of the observed ones), so of ``DONORS``
donors drawn per frame the one whose held-out share lies nearest the fraction is kept.

The donor is, for an observation family (cloud, pixel, block, station), a fresh mask of the
same family, drawn by the family's own mask sampler for one frame; for a data set's own gaps
(``family=None``), another frame of the same sample. Every frame's generator is seeded by
``(seed, split, sample index, frame)``, so the held-out points do not depend on sharding. A
static mask gets a static hold-out (frame 0's draw in every frame). A frame the donor leaves
untouched (a one-frame sample of real gaps, gaps identical in every frame, a family observing
every point) falls back to the units rule (:func:`~incdyn.datasets.holdout.holdout_mask`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from incdyn.datasets.gap_transplant import transplant_gaps
from incdyn.datasets.masks import MaskFamily, sample_masks

DONORS = 3  # donors drawn per frame; the one whose held-out share is nearest the target wins
Fallback = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def donor_gaps(
    mask: np.ndarray, t: int, family: MaskFamily | None, rng: np.random.Generator
) -> np.ndarray | None:
    """The gap pattern ``(H, W)`` transplanted onto frame ``t`` of ``mask`` ``(T, H, W)``: the
    gaps of a fresh mask of ``family``, or (``family=None``) of another frame drawn by ``rng``;
    None for a one-frame sample of a data set's own gaps."""
    frames, h, w = mask.shape
    if family is not None:
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return ~sample_masks(family, 1, 1, h, w, g)[0, 0].numpy()
    if frames < 2:
        return None
    other = int(rng.integers(frames - 1))
    return ~mask[other + (other >= t)]


def gap_holdout(
    mask: np.ndarray,
    family: MaskFamily | None,
    fraction: float,
    key: tuple[int, int, int],
    fallback: Fallback,
) -> np.ndarray:
    """Held-out points of one sample, bool ``(T, H, W)`` within ``mask`` ``(T, H, W)``.

    ``key`` is ``(seed, split id, sample index)``; frame ``t`` draws from a generator seeded by
    ``(*key, t)``. ``fallback(frame_mask (1, H, W), rng)`` is the units rule, used where the
    donor withholds nothing.
    """
    static = bool((mask == mask[:1]).all())
    out = np.zeros(mask.shape, bool)
    for t in range(1 if static else mask.shape[0]):
        rng = np.random.default_rng([*key, t])
        held = np.zeros(mask.shape[1:], bool)
        best = np.inf
        for _ in range(DONORS):
            gaps = donor_gaps(mask, t, family, rng)
            if gaps is None:
                break
            cand = transplant_gaps(mask[t], gaps, fraction, rng)
            miss = abs(cand.sum() - fraction * mask[t].sum())
            if cand.any() and miss < best:
                held, best = cand, miss
        if not held.any():
            held = fallback(mask[t : t + 1], rng)[0]
        out[t] = held
    if static:
        out[1:] = out[0]
    return out
