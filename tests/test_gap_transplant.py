"""Held-out points in the shape of a record's own gaps, and DINEOF over a whole record."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from incdyn.datasets.gap_transplant import donor_frame, transplant_gaps, transplanted_holdout
from incdyn.models.baselines.dineof import dineof_matrix
from incdyn.models.baselines.dineof_record import dineof_record


def test_transplanted_gaps_are_whole_donor_gaps_on_observed_points():
    rng = np.random.default_rng(0)
    observed = rng.random((30, 40)) < 0.8
    donor = np.zeros((30, 40), bool)
    donor[5:12, 5:15] = donor[20:26, 22:36] = donor[2:4, 30:38] = True  # three clouds
    held = transplant_gaps(observed, donor, 0.1, np.random.default_rng(1))
    assert held.any() and not (held & ~observed).any() and not (held & ~donor).any()
    labels, _ = ndimage.label(donor & observed)
    for region in np.unique(labels[held]):  # whole regions only
        assert held[labels == region].all()
    assert held.sum() >= 0.1 * observed.sum() and held.sum() < observed.sum()


def test_the_holdout_of_a_frame_is_the_same_whoever_draws_it():
    rng = np.random.default_rng(2)
    observed = rng.random((6, 12, 12)) < 0.7
    inside = np.ones((12, 12), bool)
    frames = np.arange(10, 16)
    donors = np.stack([observed[(t - 10 + 3) % 6] for t in frames])
    whole = transplanted_holdout(observed, frames, donors, inside, 0.2, seed=5)
    part = transplanted_holdout(observed[3:], frames[3:], donors[3:], inside, 0.2, seed=5)
    assert np.array_equal(whole[3:], part)
    assert donor_frame(4, 10, 0) != 4 and donor_frame(4, 10, 0) == donor_frame(4, 10, 0)


def test_record_dineof_read_in_blocks_equals_one_matrix():
    rng = np.random.default_rng(0)
    t, h, w = 30, 6, 7
    modes = rng.normal(size=(t, 2)) @ rng.normal(size=(2, h * w))
    values = modes.reshape(t, 1, h, w).astype(np.float32)
    observed = rng.random((t, h, w)) < 0.7
    inside = np.ones((h, w), bool)
    inside[0, :3] = False

    def read(first, count):
        return values[first : first + count], observed[first : first + count]

    out = dineof_record(read, t, inside, block=7, rng=np.random.default_rng(1))
    x = np.where(observed, values[:, 0], np.nan).reshape(t, -1)[:, inside.ravel()]
    ref = dineof_matrix(x.astype(np.float64), rng=np.random.default_rng(1))
    assert out.modes == (ref.modes,)
    np.testing.assert_allclose(out.filled[:, 0], ref.filled.astype(np.float32), rtol=1e-6)
    gaps = ~observed.reshape(t, -1)[:, inside.ravel()]
    err = np.abs(out.filled[:, 0] - modes[:, inside.ravel()])[gaps]
    spread = np.abs(modes - modes.mean()).mean()
    assert err.mean() < 0.5 * spread  # far better than the mean fill
