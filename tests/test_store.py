"""The zarr store: layout, NaN at unobserved training points, normalisation, reuse, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.store import StoreError, normalization, open_split
from incdyn.datasets.torch_dataset import SplitDataset


def tiny_config(*, n_train: int = 12, p: float = 0.3, seed: int = 0) -> dict:
    return store_config(
        source="navier_stokes",
        preset="quickstart",
        params={"grid": 16, "frames": 4},
        sizes={"train": n_train, "val": 4, "test": 4},
        chunk=4,
        family=MaskFamily(kind="pixel", p=p),
        seed=seed,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    url = str(tmp_path_factory.mktemp("store") / "ns.zarr")
    assert build_store(url, tiny_config(), progress=False, use_ray=False) == "generated"
    return url


def test_layout_opens_with_plain_xarray(store):
    ds = xr.open_zarr(store, group="train")
    assert ds["field"].dims == ("sample", "time", "channel", "y", "x")
    assert ds["field"].dtype == np.float32 and ds["mask"].dtype == bool
    assert ds["mask"].dims == ("sample", "time", "y", "x")
    assert "truth" not in ds  # the training split holds no complete data
    assert list(ds["channel"].values) == ["vorticity"]
    assert "viscosity" in ds and ds["viscosity"].dims == ("sample",)
    assert "truth" in xr.open_zarr(store, group="test")


def test_training_split_is_nan_exactly_where_unobserved(store):
    ds = xr.open_zarr(store, group="train")
    field, mask = ds["field"].values[:, :, 0], ds["mask"].values
    assert np.isnan(field[~mask]).all()
    assert np.isfinite(field[mask]).all()


def test_val_test_field_agrees_with_truth_where_observed(store):
    ds = xr.open_zarr(store, group="test")
    field, truth, mask = ds["field"].values[:, :, 0], ds["truth"].values[:, :, 0], ds["mask"].values
    np.testing.assert_array_equal(field[mask], truth[mask])
    assert np.isfinite(truth).all()


def test_normalisation_uses_observed_training_values_only(store):
    values = xr.open_zarr(store, group="train")["field"].values
    mean, std = normalization(store)
    np.testing.assert_allclose(mean[0], np.nanmean(values), rtol=1e-5)
    np.testing.assert_allclose(std[0], np.nanstd(values), rtol=1e-5)


def test_second_build_reuses_and_other_settings_are_refused(store):
    assert build_store(store, tiny_config(), progress=False, use_ray=False) == "reused"
    with pytest.raises(StoreError, match="other settings"):
        build_store(store, tiny_config(p=0.5), progress=False, use_ray=False)


def test_torch_dataset_normalises_and_zeroes_unobserved(store):
    ds = SplitDataset(store, "train", cache_bytes=30_000)  # room for one 20 kB chunk
    for i in (0, 5, 9):
        item = ds[i]
    assert len(ds._cache) == 1 and ds._cached_bytes <= 30_000
    item = ds[5]
    assert item["x_obs"].shape == (1, 4, 16, 16) and item["mask"].shape == (4, 16, 16)
    assert (item["x_obs"][0][~item["mask"]] == 0).all()
    with pytest.raises(ValueError, match="no ground truth"):
        SplitDataset(store, "train", with_truth=True)


def test_ray_tasks_build_the_same_store_as_inline(tmp_path, ray_local, store):
    url = str(tmp_path / "ray.zarr")
    assert build_store(url, tiny_config(), progress=False, use_ray=True) == "generated"
    a, b = xr.open_zarr(url, group="test"), xr.open_zarr(store, group="test")
    np.testing.assert_array_equal(a["truth"].values, b["truth"].values)
    np.testing.assert_array_equal(a["mask"].values, b["mask"].values)


def test_memory_store_round_trip():
    url = "memory://incdyn-test/ns.zarr"
    assert build_store(url, tiny_config(n_train=4), progress=False) == "generated"
    assert open_split(url, "train").sizes["sample"] == 4


def test_malformed_store_errors_name_store_and_variable(tmp_path, store):
    with pytest.raises(StoreError, match="cannot open group"):
        open_split(str(tmp_path / "missing.zarr"), "train")
    with pytest.raises(StoreError, match="no variable 'nope'"):
        open_split(store, "train", ["nope"])
    with pytest.raises(StoreError, match="split"):
        open_split(store, "holdout")


def test_quickstart_store_hides_every_unobserved_training_point(tmp_path, ray_local):
    from pathlib import Path

    from incdyn.platform.data_prep import ensure_data
    from incdyn.platform.spec import load_spec

    spec_path = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
    spec = load_spec(spec_path, [f"data.store={tmp_path / 'qs.zarr'}"])
    url = ensure_data(spec, progress=False)
    ds = xr.open_zarr(url, group="train")
    assert ds.sizes["sample"] == spec.data.n_train
    field, mask = ds["field"].values[:, :, 0], ds["mask"].values
    assert np.isnan(field[~mask]).all() and np.isfinite(field[mask]).all()
    assert abs(mask.mean() - spec.data.observation.p) < 0.01


@pytest.mark.parametrize(
    ("source", "preset"),
    [("navier_stokes", "quickstart"), ("shallow_water", "small"), ("advection", "small")],
)
def test_each_data_set_generates_from_a_spec(tmp_path, ray_local, source, preset):
    from incdyn.platform.data_prep import ensure_data
    from incdyn.platform.spec import parse_spec

    spec = parse_spec(
        {
            "name": f"small-{source}",
            "data": {
                "source": source,
                "preset": preset,
                "params": {"grid": 16, "frames": 4},
                "store": str(tmp_path / "s.zarr"),
                "n_train": 6,
                "n_val": 2,
                "n_test": 2,
                "chunk": 3,
            },
            "methods": [{"name": "ns", "kind": "inpaint_ns"}],
        }
    )
    url = ensure_data(spec, progress=False)
    ds = xr.open_zarr(url, group="train")
    field, mask = ds["field"].values, ds["mask"].values
    assert np.isnan(np.moveaxis(field, 2, 0)[:, ~mask]).all()
    assert np.isfinite(np.moveaxis(field, 2, 0)[:, mask]).all()
    assert ds.sizes["channel"] == {"navier_stokes": 1, "shallow_water": 3, "advection": 1}[source]
