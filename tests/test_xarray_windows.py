"""The xarray source's layout choices: dims as a mapping, splits as time ranges, tiles of a large
grid, and a domain given by a mask variable; each checked against the file's own values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import SEA_GRID, sea_surface_file

from incdyn.datasets.generators import make_config
from incdyn.datasets.sources.xarray_source import (
    XarraySourceError,
    domain_of,
    generate,
    n_samples,
    split_windows,
)

T, LAT, LON = SEA_GRID
MONTHS = pd.date_range("2000-01-01", periods=T, freq="MS")  # 2000-01 .. 2003-04
RANGES = {"train": ["2000", "2001"], "val": ["2002-01", "2002-08"], "test": ["2002-09", "2003"]}


def xcfg(url: str, **extra):
    params = {"url": url, "variables": ["sst"], "dims": {"time": "t", "y": "lat", "x": "lon"},
              "window": 4, "stride": 2, "split": [0.5, 0.25, 0.25], **extra}  # fmt: skip
    return make_config("xarray", "default", params)


@pytest.fixture(scope="module")
def monthly(tmp_path_factory) -> str:
    """Complete inside the domain, a monthly datetime axis."""
    path = tmp_path_factory.mktemp("monthly") / "sst.nc"
    return sea_surface_file(path, gaps=False, time=MONTHS)


def _file_window(url: str, first) -> np.ndarray:
    """The file's sst over ``window`` frames from ``first``, as (t, lat, lon)."""
    ds = xr.open_dataset(url)
    times = ds.indexes["t"]
    i = times.get_loc(first)
    return ds["sst"].isel(t=slice(i, i + 4)).transpose("t", "lat", "lon").values


def test_dims_mapping_is_the_list_in_any_order(monthly):
    listed = xcfg(monthly, dims=["t", "lat", "lon"])
    assert xcfg(monthly) == listed
    assert xcfg(monthly, dims={"x": "lon", "time": "t", "y": "lat"}) == listed
    with pytest.raises(ValueError, match=r"data\.params\.dims: .* needs exactly the roles"):
        xcfg(monthly, dims={"time": "t", "y": "lat"})


def test_time_ranges_hold_their_windows_and_no_frame_is_shared(monthly):
    cfg = xcfg(monthly, split=RANGES)
    starts = split_windows(cfg)
    frames = {s: {i + k for i in v for k in range(4)} for s, v in starts.items()}
    assert not (frames["train"] & frames["val"]) and not (frames["val"] & frames["test"])
    for split, (lo, hi) in RANGES.items():  # every frame inside its range (partial dates)
        times = MONTHS[sorted(frames[split])]
        assert times.min() >= pd.Period(lo).start_time and times.max() <= pd.Period(hi).end_time
    assert starts["train"] == list(range(0, 21, 2)) and starts["val"] == [24, 26, 28]
    sim = generate(cfg, 2, torch.Generator(), split="val", start=1)
    first = MONTHS[26]
    np.testing.assert_array_equal(sim.fields[0, :, 0].numpy(), _file_window(monthly, first))
    hours = (first - pd.Timestamp("1970-01-01")) / pd.Timedelta(hours=1)
    assert sim.params["window_start"][0].item() == hours  # the window's date is kept


def test_ranges_of_a_numeric_time_axis_cut_where_the_fractions_do(tmp_path):
    url = sea_surface_file(tmp_path / "steps.nc", gaps=False)  # t = 0, 1, ..., 39
    ranges = {"train": [0, 19], "val": [20, 29], "test": [30, 39]}
    assert split_windows(xcfg(url, split=ranges)) == split_windows(xcfg(url))  # 0.5/0.25/0.25


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({**RANGES, "val": ["2001-06", "2002-08"]}, "train and val ranges overlap"),
        ({**RANGES, "test": ["2002-09", "2004-06"]}, "test range .* reaches outside"),
        ({**RANGES, "val": ["2002-01", "2002-02"]}, "data.params.window: 4 frames are longer"),
        ({**RANGES, "val": ["2002-08", "2002-01"]}, "ends before it starts"),
    ],
)
def test_bad_time_ranges_are_refused_naming_the_field(monthly, split, message):
    with pytest.raises(XarraySourceError, match=message):
        split_windows(xcfg(monthly, split=split))


def test_patches_tile_the_grid_and_skip_tiles_reaching_outside_the_domain(monthly):
    cfg = xcfg(monthly, patch=4)
    tiles = [(r, c) for r in (0, 4, 8) for c in (0, 4, 8, 12) if (r, c) != (0, 0)]  # land
    assert n_samples(cfg, "train") == len(split_windows(cfg)["train"]) * len(tiles)
    sim = generate(cfg, len(tiles) + 1, torch.Generator(), split="train", start=0)
    assert sim.fields.shape == (len(tiles) + 1, 4, 1, 4, 4) and sim.domain is None
    whole = _file_window(monthly, MONTHS[0])
    for i, (r, c) in enumerate(tiles):  # window 0, tile by tile
        np.testing.assert_array_equal(sim.fields[i, :, 0].numpy(), whole[:, r : r + 4, c : c + 4])
    np.testing.assert_array_equal(  # then window 1 (frames 2..5), its first tile
        sim.fields[-1, :, 0].numpy(), _file_window(monthly, MONTHS[2])[:, 0:4, 4:8]
    )
    with pytest.raises(XarraySourceError, match=r"data\.params\.patch: .* larger than the grid"):
        split_windows(xcfg(monthly, patch=13))


def test_domain_from_a_mask_variable_of_the_file_or_of_another(tmp_path):
    url = sea_surface_file(tmp_path / "lsm.nc", gaps=False, land=0.0, lsm=True)  # land not NaN
    assert domain_of(xcfg(url)).all()  # no point missing at every time
    inside = domain_of(xcfg(url, domain={"variable": "lsm", "inside": "zero"}))
    assert (
        inside.shape == (LAT, LON) and not inside[:3, :4].any() and inside.sum() == LAT * LON - 12
    )
    other = tmp_path / "mask.nc"
    xr.Dataset({"sea": (("lat", "lon"), inside.astype(np.int8))}).to_netcdf(other)
    cfg = xcfg(url, domain={"url": str(other), "variable": "sea"})
    np.testing.assert_array_equal(domain_of(cfg), inside)
    sim = generate(cfg, 1, torch.Generator(), split="test", start=0)
    assert (
        np.isnan(sim.fields[0, :, 0, :3, :4]).all() and np.isfinite(sim.fields[0, :, 0, 3:]).all()
    )
    with pytest.raises(XarraySourceError, match=r"data\.params\.domain: .* no variable 'land'"):
        domain_of(xcfg(url, domain={"variable": "land"}))


def test_the_xarray_source_needs_no_preset():
    from incdyn.platform.spec import parse_spec

    raw = {"name": "own", "data": {"source": "xarray", "params": {"url": "x.nc"}}}
    raw["methods"] = [{"name": "telea", "kind": "telea"}]
    assert parse_spec(raw, "test spec").data.preset == "default"
    assert parse_spec({**raw, "data": {}}, "test spec").data.preset == "quickstart"


def test_unquoted_yaml_dates_are_time_range_bounds():
    import yaml

    from incdyn.platform.spec import parse_spec

    raw = yaml.safe_load(
        """
name: own
data:
  source: xarray
  params: {url: x.nc, split: {train: [2002-01-01, 2010-12-31], val: [2011-01-01, 2012-06-30],
                              test: [2012-07-01, 2013-12-31]}}
methods: [{name: telea, kind: telea}]
"""
    )
    train, _, test = parse_spec(raw, "test spec").data.params.split
    assert train == ("2002-01-01", "2010-12-31") and test[1] == "2013-12-31"
