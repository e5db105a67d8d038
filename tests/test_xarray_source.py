"""The xarray source: a user's netCDF file with its own dim names and order, _FillValue gaps and
land, through the store, held-out evaluation and the domain; malformed input named."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEA_GRID, sea_surface_file

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.holdout import HoldoutSpec
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.sources.xarray_source import XarraySourceError, domain_of, split_windows
from incdyn.datasets.store import open_split
from incdyn.platform.evaluation.evaluate import evaluate_classical

T, LAT, LON = SEA_GRID


def params(url: str, **extra) -> dict:
    return {"url": url, "variables": ["sst"], "dims": ["t", "lat", "lon"], "window": 4,
            "stride": 2, "split": [0.5, 0.25, 0.25], **extra}  # fmt: skip


def config(url: str, family: MaskFamily, **extra) -> dict:
    return store_config(
        source="xarray",
        preset="default",
        params=params(url, **extra),
        sizes={"train": 8, "val": 4, "test": 4},
        chunk=4,
        family=family,
        seed=0,
        holdout=HoldoutSpec(fraction=0.2, patch=3),
    )


def test_fill_values_are_gaps_and_land_is_outside_the_domain(tmp_path):
    from incdyn.datasets.generators import make_config

    cfg = make_config("xarray", "default", params(sea_surface_file(tmp_path / "a.nc", gaps=True)))
    inside = domain_of(cfg)
    assert inside.shape == (LAT, LON)  # transposed by name to (y, x)
    assert not inside[:3, :4].any() and inside.sum() == LAT * LON - 12
    windows = split_windows(cfg)
    assert windows["train"][-1] + 4 <= windows["val"][0] and windows["val"][-1] + 4 <= 30


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("xr")
    url = str(root / "real.zarr")
    cfg = config(sea_surface_file(root / "real.nc", gaps=True), MaskFamily(), gaps="real")
    build_store(url, cfg, progress=False, use_ray=False)
    return url


def test_real_gaps_store_has_domain_holdout_and_no_truth(real_store):
    for split in ("val", "test"):
        ds = open_split(real_store, split)
        assert "truth" not in ds and "holdout" in ds
        domain, mask = ds["domain"].values, ds["mask"].values
        assert not mask[..., ~domain].any() and not ds["holdout"].values[..., ~domain].any()
        assert 0.5 < mask[..., domain].mean() < 0.9  # the file's own gaps are the mask


@pytest.mark.parametrize("kind", ["dineof", "telea"])
def test_real_gaps_are_scored_on_held_out_points_and_land_stays_nan(real_store, kind):
    ev = evaluate_classical(kind, store_url=real_store, max_samples=None, source="xarray")
    assert "test_mse" not in ev.metrics  # no truth
    assert 0 < ev.metrics["test_heldout_mse"] < 1 and 0 < ev.metrics["val_heldout_mse"] < 1
    assert np.isnan(ev.example_imputed[..., :3, :4]).all()
    assert np.isfinite(ev.example_imputed[..., 3:, 4:]).all()


def test_benchmark_on_a_complete_file_keeps_truth_and_scores_only_the_domain(tmp_path):
    url = str(tmp_path / "bench.zarr")
    family = MaskFamily(kind="cloud", p=0.6, scale=2.0, static=False)
    build_store(url, config(sea_surface_file(tmp_path / "b.nc", gaps=False), family), progress=False, use_ray=False)  # fmt: skip
    ev = evaluate_classical("dineof", store_url=url, max_samples=None, source="xarray")
    assert np.isfinite(ev.metrics["test_mse"]) and ev.metrics["test_mse"] < 0.5
    assert np.isfinite(ev.metrics["test_heldout_mse"])
    assert np.isnan(ev.example_imputed[..., :3, :4]).all()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dims": ["t", "latitude", "lon"]}, "data.params.dims"),
        ({"variables": ["sst", "chl"]}, "data.params.variables"),
        ({"window": 12}, "data.params.window"),
        ({"patch": 13}, "data.params.patch"),  # larger than the 12 × 16 grid
        ({"split": [0.5, 0.5]}, "data.params.split"),
        ({"gaps": "benchmark"}, "data.params.gaps"),  # gaps inside the domain
    ],
)
def test_malformed_input_names_the_field(tmp_path, change, field):
    url = sea_surface_file(tmp_path / "c.nc", gaps=True)
    with pytest.raises(ValueError, match=field):  # the config's, or the file's (XarraySourceError)
        build_store(str(tmp_path / "s.zarr"), config(url, MaskFamily(), **change), use_ray=False)
    assert not (tmp_path / "s.zarr").exists()  # nothing written


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time": np.r_[np.arange(20), np.arange(20)]}, "duplicated"),
        ({"time": np.arange(T)[::-1].copy()}, "not increasing"),
        ({"all_nan": True}, "NaN everywhere"),
    ],
)
def test_bad_time_axis_or_empty_variable_is_refused(tmp_path, kwargs, message):
    url = sea_surface_file(tmp_path / "d.nc", gaps=True, **kwargs)
    with pytest.raises(XarraySourceError, match=message):
        build_store(str(tmp_path / "s.zarr"), config(url, MaskFamily(), gaps="real"), use_ray=False)
