"""score(): each data set's own metric, read through the store (Shallow Water, Advection)."""

from __future__ import annotations

import numpy as np
import pytest

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.metrics.scoring import physics_context, score
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.store import open_split


def _store(tmp_path, source: str, preset: str) -> str:
    url = str(tmp_path / f"{source}.zarr")
    cfg = store_config(
        source=source,
        preset=preset,
        params={"grid": 16, "frames": 6},
        sizes={"train": 4, "val": 2, "test": 4},
        chunk=4,
        family=MaskFamily(p=0.5),
        seed=0,
    )
    build_store(url, cfg, progress=False, use_ray=False)
    return url


def test_shallow_water_feasibility_of_truth_is_far_below_a_corrupted_field(tmp_path):
    split = open_split(_store(tmp_path, "shallow_water", "small"), "test", ["truth"])
    truth = split["truth"].values
    ctx = physics_context(split, "shallow_water")
    idx = np.arange(truth.shape[0])
    same = score(truth, truth, idx, ctx)
    np.testing.assert_allclose(same["feasibility"], same["feasibility_truth"])
    rng = np.random.default_rng(0)
    noisy = truth + 0.1 * truth.std(axis=(0, 1, 3, 4), keepdims=True) * rng.standard_normal(
        truth.shape
    )
    bad = score(noisy.astype(np.float32), truth, idx, ctx)
    assert (bad["feasibility"] > 10 * bad["feasibility_truth"]).all()


def test_advection_forward_mse_is_zero_for_the_true_first_frame(tmp_path):
    split = open_split(_store(tmp_path, "advection", "small"), "test", ["truth"])
    truth = split["truth"].values
    ctx = physics_context(split, "advection")
    idx = np.arange(truth.shape[0])
    assert score(truth, truth, idx, ctx)["forward_mse"].max() < 1e-10
    shifted = truth.copy()
    shifted[:, 0] += 0.1
    assert score(shifted, truth, idx, ctx)["forward_mse"] == pytest.approx(0.01, rel=1e-3)


def test_extra_metrics_are_averaged_per_sample_across_shards():
    acc, other = SquaredError(("c",)), SquaredError(("c",))
    z = np.zeros((2, 3, 1, 4, 4), np.float32)
    m = np.ones((2, 3, 4, 4), bool)
    for a, v in ((acc, [1.0, 2.0]), (other, [6.0])):
        a.update(z[: len(v)], z[: len(v)], m[: len(v)], np.ones(1))
        a.add({"forward_mse": np.array(v)})
    acc.merge(other)
    assert acc.result()["test_forward_mse"] == pytest.approx(3.0)


def test_navier_stokes_has_no_extra_metric():
    assert physics_context(None, "navier_stokes") is None
    assert score(np.zeros(1), np.zeros(1), np.arange(1), None) == {}


def test_era5_latitude_weighted_rmse_matches_weatherbench2_convention():
    from incdyn.datasets.metrics.scoring import latitude_weighted_rmse

    lat = np.array([-60.0, 0.0, 60.0])
    truth = np.zeros((1, 2, 2, 3, 4))
    imputed = truth.copy()
    imputed[:, :, 0, 1, :] = 2.0  # error only on the equator, channel 0
    out = latitude_weighted_rmse(imputed, truth, lat, ["z500", "t850"])
    w = np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean()
    assert out["rmse_z500"][0] == pytest.approx(np.sqrt(4.0 * w[1] / 3))
    assert out["rmse_t850"][0] == 0.0
    polar = truth.copy()
    polar[:, :, 0, 0, :] = 2.0  # the same error near a pole weighs less
    assert (
        latitude_weighted_rmse(polar, truth, lat, ["z500", "t850"])["rmse_z500"][0]
        < out["rmse_z500"][0]
    )
