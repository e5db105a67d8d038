"""DINEOF: a low-rank field with gaps comes back to round-off; the mode count is cross-validated."""

from __future__ import annotations

import numpy as np

from incdyn.models.baselines.dineof import dineof, dineof_matrix


def low_rank(*, rank: int, t: int = 20, s: int = 200, seed: int = 0) -> np.ndarray:
    """A rank-``rank`` field whose first time pattern is constant, so that removing the mean
    leaves its rank unchanged; distinct singular values."""
    rng = np.random.default_rng(seed)
    time = rng.standard_normal((t, rank)) * 2.0 ** -np.arange(rank)
    time[:, 0] = 1.0
    return time @ rng.standard_normal((rank, s))


def test_low_rank_field_with_gaps_is_reconstructed_to_round_off():
    truth = low_rank(rank=3)
    rng = np.random.default_rng(1)
    gappy = np.where(rng.random(truth.shape) < 0.25, np.nan, truth)
    out = dineof_matrix(gappy, rng=np.random.default_rng(0), tol=1e-12, max_iter=2000)
    assert out.modes == 3
    gaps = np.isnan(gappy)
    assert np.abs(out.filled - truth)[gaps].max() < 1e-8 * np.abs(truth).max()
    assert np.array_equal(out.filled[~gaps], truth[~gaps])


def test_mode_count_is_chosen_by_cross_validation_on_a_noisy_field():
    truth = low_rank(rank=4, seed=2)
    rng = np.random.default_rng(3)
    noisy = truth + 0.02 * rng.standard_normal(truth.shape)
    gappy = np.where(rng.random(truth.shape) < 0.3, np.nan, noisy)
    out = dineof_matrix(gappy, rng=np.random.default_rng(0))
    errors = out.cv_error
    assert out.modes == 4 == min(errors, key=errors.get)
    assert errors[4] < 0.5 * errors[3] and len(errors) >= 5  # more modes were tried and lost
    gaps = np.isnan(gappy)
    rmse = np.sqrt(np.mean((out.filled - truth)[gaps] ** 2))
    assert rmse < 0.03  # about the noise level, far below the field's spread


def test_sample_interface_fills_moving_gaps_and_leaves_never_observed_points_at_the_mean():
    field = low_rank(rank=2, t=12, s=16 * 16, seed=4).reshape(12, 1, 16, 16).astype(np.float32)
    rng = np.random.default_rng(5)
    mask = rng.random((12, 16, 16)) < 0.7
    mask[:, 0, 0] = False  # a point never observed in the window: nothing to reconstruct from
    out = dineof(np.where(mask[:, None], field, np.nan).astype(np.float32), mask)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    moving = ~mask
    moving[:, 0, 0] = False
    assert np.abs(out - field)[:, 0][moving].max() < 1e-3
    np.testing.assert_allclose(out[:, 0, 0, 0], field[:, 0][mask].mean(), rtol=1e-5)
