"""DINEOF with ``scope: record`` (one reconstruction of each tile's whole record, as its users
run it; Beckers & Rixen 2003) against DINEOF per window, on a known low-rank field with moving
gaps; the key's validation; the default scope unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.holdout import HoldoutSpec
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.sources.xarray_source import n_samples
from incdyn.datasets.store import normalization, open_split
from incdyn.models.baselines.classical import impute_batch
from incdyn.platform.evaluation.dineof_record_scope import dineof_record_splits, n_tiles
from incdyn.platform.evaluation.evaluate import evaluate_classical
from incdyn.platform.spec import SpecError, dump_spec, parse_spec

FRAMES, LAT, LON, PATCH = 120, 16, 32, 16  # two 16 × 16 tiles
TOLERANCE = 0.05  # record-scope MSE at the gaps, in units of the field's variance


def rank3_file(path) -> str:
    """A rank-3 field: smooth spatial modes × seeded smooth temporal coefficients, plus a mean
    and a little measurement noise (so that DINEOF's cross-validation finds the field's modes
    rather than ever smaller round-off gains)."""
    rng = np.random.default_rng(0)
    y, x = np.meshgrid(np.linspace(0, np.pi, LAT), np.linspace(0, 2 * np.pi, LON), indexing="ij")
    modes = np.stack([np.sin(y) * np.cos(x), np.cos(2 * y) * np.sin(x / 2), np.sin(y + 2 * x)])
    t = np.arange(FRAMES)
    coeffs = np.stack(
        [a * np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi))
         for a, p in ((3.0, 37.0), (2.0, 23.0), (1.5, 11.0))]
    )  # fmt: skip
    sst = 15.0 + np.einsum("kt,kyx->tyx", coeffs, modes)
    sst += 0.05 * rng.standard_normal(sst.shape)
    ds = xr.Dataset(
        {"sst": (("t", "lat", "lon"), sst.astype(np.float32))},
        coords={"t": t, "lat": np.arange(LAT), "lon": np.arange(LON)},
    )
    ds.to_netcdf(path)
    return str(path)


def build(root, **extra) -> str:
    params = {"url": rank3_file(root / "rank3.nc"), "variables": ["sst"],
              "dims": ["t", "lat", "lon"], "window": 4, "stride": 2, "patch": PATCH,
              "split": [0.6, 0.2, 0.2], **extra}  # fmt: skip
    from incdyn.datasets.generators import make_config

    cfg = make_config("xarray", "default", params)
    sizes = {s: n_samples(cfg, s) for s in ("train", "val", "test")}
    url = str(root / "rank3.zarr")
    config = store_config(
        source="xarray",
        preset="default",
        params=params,
        sizes=sizes,
        chunk=16,
        family=MaskFamily(kind="cloud", p=0.5, scale=2.0, static=False),
        seed=0,
        holdout=HoldoutSpec(fraction=0.1),
    )
    build_store(url, config, progress=False, use_ray=False)
    return url


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return build(tmp_path_factory.mktemp("rank3"))


def test_store_has_two_tiles_of_overlapping_windows_with_half_observed(store):
    assert n_tiles(store) == 2
    test = open_split(store, "test")
    assert test.sizes["sample"] % 2 == 0 and test.sizes["time"] == 4
    assert 0.4 < test["mask"].values.mean() < 0.6  # about half observed, gaps moving per frame


def test_record_recovers_the_low_rank_field_and_beats_dineof_per_window(store):
    record = evaluate_classical("dineof", store_url=store, max_samples=None, source="xarray",
                                scope="record")  # fmt: skip
    window = evaluate_classical("dineof", store_url=store, max_samples=None, source="xarray")
    r, w = record.metrics, window.metrics
    assert r["test_mse_unobserved"] < TOLERANCE  # the gaps, in units of the field's variance
    assert r["test_mse_unobserved"] < 0.25 * w["test_mse_unobserved"]
    assert r["test_heldout_mse"] < TOLERANCE and r["test_heldout_mse"] < w["test_heldout_mse"]
    assert r["val_mse"] < TOLERANCE and r["val_heldout_mse"] < TOLERANCE
    assert set(r) == set(w)  # the same metric names as every method
    # the example: observed points keep their observed values, every point filled
    reference, mask, imputed = record.example_truth, record.example_mask, record.example_imputed
    first = open_split(store, "test").isel(sample=0)
    observed = np.broadcast_to(mask[:, None], imputed.shape)
    np.testing.assert_array_equal(imputed[observed], first["field"].values[observed])
    np.testing.assert_array_equal(reference, first["truth"].values)
    assert np.isfinite(imputed).all()


def test_record_scope_keeps_nan_outside_a_domain(tmp_path):
    store = build(tmp_path, domain="all", gaps="real")  # no truth: the file's gaps are the mask
    out = dineof_record_splits(store, max_samples=4, source="xarray")
    assert "test_mse" not in out["test"][0] and np.isfinite(out["test"][0]["test_heldout_mse"])
    assert np.isfinite(out["test"][1][2]).all()  # one domain: every point inside


def test_default_window_scope_is_the_per_sample_baseline(store):
    ev = evaluate_classical("dineof", store_url=store, max_samples=8, source="xarray")
    test = open_split(store, "test").isel(sample=slice(0, 8))
    values, mask = test["field"].values.astype(np.float32), test["mask"].values.astype(bool)
    acc = SquaredError(("sst",))
    acc.update(impute_batch("dineof", values, mask), test["truth"].values, mask, normalization(store)[1])  # fmt: skip
    expected = acc.result()
    assert ev.metrics["test_mse"] == pytest.approx(expected["test_mse"], rel=1e-12)
    assert ev.metrics["test_mse_unobserved"] == pytest.approx(expected["test_mse_unobserved"], rel=1e-12)  # fmt: skip


def test_scope_key_round_trips_and_the_default_is_left_out_of_the_dump():
    spec = parse_spec({"name": "x", "methods": [
        {"kind": "dineof", "name": "per_window"},
        {"kind": "dineof", "name": "on_record", "scope": "record"},
    ]})  # fmt: skip
    assert [m.scope for m in spec.methods] == ["window", "record"]
    dumped = spec.to_dict()["methods"]
    assert dumped == [{"kind": "dineof", "name": "per_window"},
                      {"kind": "dineof", "name": "on_record", "scope": "record"}]  # fmt: skip
    import yaml

    assert parse_spec(yaml.safe_load(dump_spec(spec))) == spec


@pytest.mark.parametrize("kind", ["telea", "inpaint_ns", "temporal"])
def test_record_scope_is_refused_for_other_kinds(kind):
    with pytest.raises(SpecError, match=r"methods\.0.*scope: record is for kind: dineof only"):
        parse_spec({"name": "x", "methods": [{"kind": kind, "name": "m", "scope": "record"}]})


def test_max_modes_and_tol_bound_the_mode_search():
    # the options DINEOF's users set on a large record: the most modes tried, and the relative
    # change that ends each reconstruction (a looser one takes fewer iterations)
    from incdyn.models.baselines.dineof import dineof_matrix
    from incdyn.platform.evaluation.dineof_record_scope import _options

    rng = np.random.default_rng(1)
    field = rng.standard_normal((80, 6)) @ rng.standard_normal((6, 70))  # rank 6
    noisy = field + 0.05 * rng.standard_normal(field.shape)  # a measurement's noise
    x = np.where(rng.random(field.shape) < 0.6, noisy, np.nan)
    free = dineof_matrix(x, rng=np.random.default_rng(0))
    capped = dineof_matrix(x, rng=np.random.default_rng(0), **_options(2, None))
    assert free.modes >= 6 and max(free.cv_error) > free.modes  # its search reaches the rank
    assert set(capped.cv_error) == {1, 2} and capped.modes <= 2
    loose = dineof_matrix(x, rng=np.random.default_rng(0), **_options(None, 1e-3))
    assert loose.modes >= 6  # the rank is reached at a looser tolerance too
    gaps = ~np.isfinite(x)
    err = {k: np.sqrt(np.mean((r.filled[gaps] - field[gaps]) ** 2)) for k, r in
           (("free", free), ("loose", loose), ("capped", capped))}  # fmt: skip
    assert err["free"] < 0.15 * field.std()
    assert (
        abs(err["loose"] - err["free"]) < 0.1 * err["free"]
    )  # a looser tolerance, ~ the same fill
    assert err["capped"] > 5 * err["loose"]  # two modes cannot hold a rank-6 field


def test_record_scope_with_options_recovers_the_field(store):
    out = dineof_record_splits(store, max_samples=None, source="xarray", max_modes=5, tol=1e-3)
    assert out["test"][0]["test_mse_unobserved"] < TOLERANCE


def test_max_modes_and_tol_round_trip_and_need_scope_record():
    on_record = {"kind": "dineof", "name": "r", "scope": "record", "max_modes": 50, "tol": 1e-3}
    spec = parse_spec({"name": "x", "methods": [on_record]})
    assert spec.to_dict()["methods"] == [on_record]
    assert parse_spec({"name": "x", "methods": [{"kind": "dineof", "name": "w"}]}).to_dict()[
        "methods"
    ] == [{"kind": "dineof", "name": "w"}]  # unset: left out of the dump, as before
    with pytest.raises(SpecError, match=r"max_modes and tol are options of kind: dineof with"):
        parse_spec({"name": "x", "methods": [{"kind": "dineof", "name": "w", "max_modes": 9}]})
    with pytest.raises(SpecError, match=r"max_modes"):
        parse_spec({"name": "x", "methods": [{**on_record, "max_modes": 0}]})


def test_record_matrices_filled_as_ray_tasks_equal_the_serial_fill(store, ray_local):
    # each (tile, pass, channel) matrix is one Ray task, seeded on its own: the same numbers
    from incdyn.platform.evaluation import dineof_record_scope as scope

    parallel = scope.run_dineof_record(store, max_samples=4, source="xarray", max_modes=4)
    serial = dineof_record_splits(store, max_samples=4, source="xarray", max_modes=4)
    for split in ("val", "test"):
        assert parallel[split][0] == serial[split][0]
        np.testing.assert_array_equal(parallel[split][1][2], serial[split][1][2])
