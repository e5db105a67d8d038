"""Ensemble verification against known answers: members drawn from the target's own predictive
distribution score spread–skill ≈ 1, nominal coverage, a flat rank histogram and the Gaussian
CRPS σ/√π; an under-dispersed ensemble scores below; split-conformal calibration fitted on other
points restores the coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from incdyn.datasets.metrics.ensemble_scores import EnsembleScores, points_of
from incdyn.platform.evaluation.calibration import (
    Calibration,
    conformal_quantile,
    fit_calibration,
    interval,
    load_calibration,
    save_calibration,
)

K, SIGMA, SCALE = 10, (0.5, 2.0), np.array([1.0, 4.0])


def draw(
    rng: np.random.Generator, *, dispersion: float, b: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members ``(B, K, C, T, H, W)`` around a random centre, target from ``N(centre, σ_c²)``:
    members with ``dispersion`` × the target's standard deviation per channel; all points."""
    shape = (b, 2, 4, 8, 8)
    centre = rng.normal(0.0, 3.0, shape)
    sigma = np.array(SIGMA).reshape(1, 2, 1, 1, 1)
    target = centre + sigma * rng.standard_normal(shape)
    members = centre[:, None] + dispersion * sigma[:, None] * rng.standard_normal(
        (b, K, *shape[1:])
    )
    return members, target, np.ones((b, 4, 8, 8), bool)


def scores_of(members, target, points, **kw) -> EnsembleScores:
    acc = EnsembleScores(("u", "h"), K, seed=0)
    half = members.shape[0] // 2  # two updates: the accumulator sums batches
    for sl in (slice(0, half), slice(half, None)):
        acc.update(members[sl], target[sl], points[sl], scale=SCALE, **kw)
    return acc


def test_true_predictive_ensemble_is_calibrated():
    rng = np.random.default_rng(0)
    acc = scores_of(*draw(rng, dispersion=1.0))
    r = acc.result()
    assert r["test_spread_skill"] == pytest.approx(1.0, abs=0.02)
    assert r["test_spread_skill_u"] == pytest.approx(1.0, abs=0.03)
    assert r["test_coverage_90"] == pytest.approx(0.9, abs=0.01)
    assert r["test_coverage_50"] == pytest.approx(0.5, abs=0.01)
    # CRPS of N(μ, σ²) at its own draws is σ/√π on average (fair estimator: unbiased)
    want = np.mean(np.array(SIGMA) / SCALE) / math.sqrt(math.pi)
    assert r["test_crps"] == pytest.approx(want, rel=0.03)
    freq = acc.ranks / acc.ranks.sum()
    assert acc.ranks.sum() == acc.count == 32 * 2 * 4 * 64
    np.testing.assert_allclose(freq, 1 / (K + 1), atol=0.01)  # flat rank histogram


def test_under_dispersed_ensemble_scores_below_and_calibration_fixes_it():
    rng = np.random.default_rng(1)
    members, target, points = draw(rng, dispersion=0.3)
    r = scores_of(members, target, points).result()
    assert r["test_spread_skill"] == pytest.approx(0.3, abs=0.03)
    assert r["test_coverage_90"] < 0.5
    good = scores_of(*draw(rng, dispersion=1.0)).result()
    assert r["test_crps"] > good["test_crps"]

    # fit on other draws of the same ensemble (no truth: any points with a known value)
    cal_members, cal_target, cal_points = draw(rng, dispersion=0.3)
    m, y, ch = points_of(cal_members, cal_target, cal_points)
    calibration = fit_calibration(
        np.abs(m.mean(1) - y), m.std(1), ch, ("u", "h"), k=K, sampler="single", fitted_on="test"
    )
    assert calibration is not None and calibration.n == (32 * 4 * 64,) * 2
    acc = scores_of(members, target, points, calibration=calibration.at((0.5, 0.9)))
    fixed = acc.result()
    assert fixed["test_calibrated_coverage_90"] == pytest.approx(0.9, abs=0.01)
    assert fixed["test_calibrated_coverage_50"] == pytest.approx(0.5, abs=0.015)
    # |x̄ − y| / σ is a scaled Student t with K − 1 degrees of freedom, the same in both channels
    # (both 0.3 × their σ): q = t_{K−1}(0.95) · √(1/0.3² + 1/K) · √(K/(K−1))
    want = student_t.ppf(0.95, K - 1) * math.sqrt(1 / 0.09 + 1 / K) * math.sqrt(K / (K - 1))
    np.testing.assert_allclose(calibration.inflation(0.9), want, rtol=0.02)


def test_conformal_quantile_and_storage(tmp_path):
    scores = np.arange(1.0, 20.0)  # 19 scores: level 0.9 takes the ⌈20·0.9⌉ = 18th
    assert conformal_quantile(scores, 0.9) == 18.0
    assert conformal_quantile(scores[:5], 0.9) == math.inf  # too few points for 90 %
    cal = fit_calibration(
        np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 1.0]), np.zeros(3, int), ("u",),
        k=2, sampler="single", fitted_on="x", levels=(0.5,),
    )  # fmt: skip
    assert cal is not None and cal.n == (1 + 1,)  # the point with σ = 0 is left out
    assert fit_calibration(np.ones(3), np.zeros(3), np.zeros(3, int), ("u",), k=1,
                           sampler="single", fitted_on="x") is None  # fmt: skip
    save_calibration(tmp_path, cal)
    assert load_calibration(tmp_path) == cal
    assert load_calibration(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match="outside the calibrated levels"):
        cal.inflation(0.9)
    lo, hi = interval(np.zeros((2, 3)), np.ones((2, 3)), np.array([2.0, 1.0]), channel_axis=0)
    np.testing.assert_array_equal(hi, [[2.0] * 3, [1.0] * 3])
    np.testing.assert_array_equal(lo, -hi)
    assert isinstance(Calibration.from_json(cal.to_json()), Calibration)
