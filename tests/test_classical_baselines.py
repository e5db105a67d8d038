"""Tests for the classical baselines of paper Sec. 4.1 (Temporal Consistency, Telea, NS)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from incdyn.models.baselines.classical import CLASSICAL, impute_batch
from incdyn.models.baselines.inpaint_opencv import inpaint_ns, inpaint_telea
from incdyn.models.baselines.temporal_consistency import temporal_consistency


def smooth_field(
    *, frames: int = 4, channels: int = 1, size: int = 32, drift: float = 0.05, seed: int = 0
) -> np.ndarray:
    """(T, C, H, W) float32 sum of periodic sines whose phases drift in time."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    phases = rng.uniform(0, 2 * np.pi, size=(channels, 3))
    out = np.empty((frames, channels, size, size))
    for t in range(frames):
        for c in range(channels):
            p = phases[c] + drift * 2 * np.pi * t
            out[t, c] = (
                np.sin(2 * np.pi * x + p[0])
                + np.cos(2 * np.pi * y + p[1])
                + 0.5 * np.sin(2 * np.pi * (x + y) + p[2])
            )
    return out.astype(np.float32)


def random_mask(*, frames: int = 4, size: int = 32, observed: float = 0.5, seed: int = 0):
    """(T, H, W) bool mask, each point observed with probability ``observed``."""
    return np.random.default_rng(seed).random((frames, size, size)) < observed


def rescaled(field: np.ndarray, *, lo: float, hi: float) -> np.ndarray:
    """The field mapped affinely onto [lo, hi] (float32)."""
    f = field.astype(np.float64)
    unit = (f - f.min()) / (f.max() - f.min())
    return (lo + (hi - lo) * unit).astype(np.float32)


def relative_mse(estimate: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    """MSE over ``where`` divided by the variance of the truth (scale-free)."""
    err = estimate.astype(np.float64) - truth.astype(np.float64)
    return float(np.mean(err[where] ** 2) / np.var(truth.astype(np.float64)))


def with_nan_holes(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[:, None], values, np.float32(np.nan))


# --- contract shared by every method -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CLASSICAL))
@pytest.mark.parametrize("channels", [1, 3])
def test_observed_unchanged_no_nan_shape_dtype(name, channels):
    truth = smooth_field(frames=5, channels=channels)
    mask = random_mask(frames=5, observed=0.3, seed=1)
    mask[2] = False  # an empty frame
    mask[:, 10:14, 10:14] = False  # a point set never observed (static hole)
    values = with_nan_holes(truth, mask)
    out = CLASSICAL[name](values, mask)
    assert out.shape == values.shape and out.dtype == np.float32
    assert not np.isnan(out).any()
    observed = np.broadcast_to(mask[:, None], values.shape)
    assert np.array_equal(out.view(np.uint32)[observed], values.view(np.uint32)[observed])


@pytest.mark.parametrize("name", sorted(CLASSICAL))
def test_fully_observed_is_identity_and_empty_sample_is_zero(name):
    values = smooth_field(frames=3, channels=2)
    full = np.ones((3, 32, 32), dtype=bool)
    assert np.array_equal(CLASSICAL[name](values, full), values)
    empty = ~full
    assert np.array_equal(CLASSICAL[name](with_nan_holes(values, empty), empty), 0 * values)


@pytest.mark.parametrize("method", [inpaint_telea, inpaint_ns])
def test_opencv_empty_frame_copies_nearest_frame_earlier_on_tie(method):
    values = smooth_field(frames=4)
    mask = random_mask(frames=4, seed=2)
    mask[2] = False  # frames 1 and 3 are equally near: the earlier one, 1, is used
    mask[0] = False  # frame 0's nearest frame with observations is 1
    out = method(with_nan_holes(values, mask), mask)
    assert np.array_equal(out[2], out[1]) and np.array_equal(out[0], out[1])


@pytest.mark.parametrize("method", [inpaint_telea, inpaint_ns])
def test_opencv_constant_frame_filled_with_constant(method):
    values = np.full((2, 1, 32, 32), 7.25, dtype=np.float32)
    mask = random_mask(frames=2, seed=3)
    out = method(with_nan_holes(values, mask), mask)
    assert np.array_equal(out, values)


# --- OpenCV inpainting ---------------------------------------------------------------------


@pytest.mark.parametrize("method", [inpaint_telea, inpaint_ns])
def test_opencv_reconstructs_smooth_field_from_half_the_pixels(method):
    truth = smooth_field(frames=3, channels=2)
    mask = random_mask(frames=3, observed=0.5, seed=4)
    out = method(with_nan_holes(truth, mask), mask)
    hidden = ~np.broadcast_to(mask[:, None], truth.shape)
    assert relative_mse(out, truth, hidden) < 0.1


def test_telea_is_scale_invariant_thanks_to_rescaling():
    base = smooth_field(frames=2)
    mask = random_mask(frames=2, observed=0.5, seed=5)
    hidden = ~np.broadcast_to(mask[:, None], base.shape)
    errors = {}
    for lo, hi in [(-1e-3, 1e-3), (0.0, 255.0)]:
        truth = rescaled(base, lo=lo, hi=hi)
        errors[hi] = relative_mse(inpaint_telea(with_nan_holes(truth, mask), mask), truth, hidden)
    assert abs(errors[1e-3] - errors[255.0]) <= 0.1 * errors[255.0]

    # Why the rescaling exists: cv2.inpaint TELEA straight on the small-range float32 frame.
    truth = rescaled(base, lo=-1e-3, hi=1e-3)
    direct = np.stack(
        [
            cv2.inpaint(
                np.where(mask[t], truth[t, 0], 0).astype(np.float32),
                (~mask[t]).astype(np.uint8),
                3.0,
                cv2.INPAINT_TELEA,
            )[None]
            for t in range(truth.shape[0])
        ]
    )
    assert relative_mse(direct, truth, hidden) > 100 * errors[255.0]


# --- Temporal Consistency ------------------------------------------------------------------


def test_temporal_point_seen_once_is_copied_to_all_frames():
    values = smooth_field(frames=6, channels=2, drift=0.1)
    mask = np.ones((6, 32, 32), dtype=bool)
    mask[:, 7, 9] = False
    mask[3, 7, 9] = True
    out = temporal_consistency(with_nan_holes(values, mask), mask)
    for t in range(6):
        assert np.array_equal(out[t, :, 7, 9], values[3, :, 7, 9])


def test_temporal_tie_takes_earlier_frame():
    values = smooth_field(frames=5, drift=0.1)
    mask = np.ones((5, 32, 32), dtype=bool)
    mask[:, 4, 4] = False
    mask[[1, 3], 4, 4] = True
    out = temporal_consistency(with_nan_holes(values, mask), mask)
    assert out[2, 0, 4, 4] == values[1, 0, 4, 4]  # frames 1 and 3 are equally near
    assert out[0, 0, 4, 4] == values[1, 0, 4, 4] and out[4, 0, 4, 4] == values[3, 0, 4, 4]


def test_temporal_never_observed_point_gets_idw_of_its_ring():
    values = smooth_field(frames=3, channels=2)
    mask = np.ones((3, 32, 32), dtype=bool)
    r, c = 12, 20
    mask[:, r, c] = False  # static: never observed; its 8 nearest points are the 3x3 ring
    out = temporal_consistency(with_nan_holes(values, mask), mask)
    ring = values[:, :, r - 1 : r + 2, c - 1 : c + 2].astype(np.float64)
    weights = np.array([[0.5, 1.0, 0.5], [1.0, 0.0, 1.0], [0.5, 1.0, 0.5]])  # distance ** -2
    expected = (ring * weights).sum(axis=(-2, -1)) / weights.sum()
    np.testing.assert_allclose(out[:, :, r, c], expected, rtol=1e-6)
    neighbours = ring.reshape(3, 2, 9)[..., [0, 1, 2, 3, 5, 6, 7, 8]]
    assert np.all(out[:, :, r, c] >= neighbours.min(axis=-1))
    assert np.all(out[:, :, r, c] <= neighbours.max(axis=-1))


def test_temporal_never_observed_hole_within_observed_range():
    values = smooth_field(frames=2)
    mask = random_mask(frames=1, observed=0.4, seed=6).repeat(2, axis=0)
    mask[:, 5:15, 5:15] = False
    out = temporal_consistency(with_nan_holes(values, mask), mask)
    for t in range(2):
        seen = values[t, 0][mask[t]]
        hole = out[t, 0, 5:15, 5:15]
        assert seen.min() <= hole.min() and hole.max() <= seen.max()


def test_temporal_exact_on_field_constant_in_time():
    frame = smooth_field(frames=1, channels=2)
    values = frame.repeat(8, axis=0)
    mask = random_mask(frames=8, observed=0.25, seed=7)
    out = temporal_consistency(with_nan_holes(values, mask), mask)
    seen_once = np.broadcast_to(mask.any(axis=0), values.shape)
    assert seen_once.mean() > 0.8 and not seen_once.all()
    assert np.array_equal(out[seen_once], values[seen_once])


# --- batch driver ---------------------------------------------------------------------------


def test_impute_batch_matches_per_sample_calls():
    values = np.stack([smooth_field(frames=3, seed=s) for s in range(2)])
    mask = np.stack([random_mask(frames=3, seed=s) for s in range(2)])
    for name, method in CLASSICAL.items():
        out = impute_batch(name, values, mask)
        for i in range(2):
            assert np.array_equal(out[i], method(values[i], mask[i]))


@pytest.mark.parametrize(
    ("name", "values_shape", "values_dtype", "mask_shape", "mask_dtype", "message"),
    [
        (
            "bogus",
            (2, 3, 1, 8, 8),
            np.float32,
            (2, 3, 8, 8),
            bool,
            "allowed: \\['dineof', 'inpaint_ns'",
        ),
        ("telea", (2, 3, 1, 8, 8), np.float32, (2, 3, 8, 9), bool, "does not match"),
        ("telea", (2, 3, 1, 8, 8), np.float32, (2, 3, 8, 8), np.uint8, "mask must have dtype"),
        ("temporal", (3, 1, 8, 8), np.float32, (3, 8, 8), bool, "\\(N, T, C, H, W\\)"),
        ("temporal", (2, 3, 1, 8, 8), np.float64, (2, 3, 8, 8), bool, "float32"),
    ],
)
def test_impute_batch_rejects_bad_input(
    name, values_shape, values_dtype, mask_shape, mask_dtype, message
):
    values = np.zeros(values_shape, dtype=values_dtype)
    mask = np.ones(mask_shape, dtype=mask_dtype)
    with pytest.raises(ValueError, match=message):
        impute_batch(name, values, mask)
