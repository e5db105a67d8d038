"""ERA5 loader on fixtures with WeatherBench2's and ARCO-ERA5's exact schemas (no network)."""

from __future__ import annotations

import time

import fsspec
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import zarr

from incdyn.datasets.build import build_store, split_offset, store_config
from incdyn.datasets.generators import GENERATORS, make_config
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.sources.era5 import (
    CHANNELS,
    DEFAULT_VARIABLES,
    UNITS,
    ERA5Config,
    ERA5Error,
    generate,
    iter_windows,
    n_windows,
)

WB2_LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
ARCO_LEVELS = (1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300, 350)
ARCO_LEVELS += (400, 450, 500, 550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900, 925, 950)
ARCO_LEVELS += (975, 1000)
UPPER = ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind")
UPPER += ("specific_humidity",)
SURFACE = ("2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind")
SURFACE += ("mean_sea_level_pressure",)


def _write(url: str, ds: xr.Dataset) -> xr.Dataset:
    ds.to_zarr(url, zarr_format=2, consolidated=True, mode="w")  # as WeatherBench2 / ARCO
    return ds


def mock_wb2_store(
    url: str, *, start: str = "2019-12-31T12", frames: int = 16, nlon: int = 64, nlat: int = 32
) -> xr.Dataset:
    """WeatherBench2's 64×32 ERA5 store: 6-hourly, ``(time, [level,] longitude, latitude)``,
    latitude ascending without the poles, 13 levels; the first two frames lie in 2019."""
    rng = np.random.default_rng(0)
    t = len(WB2_LEVELS)
    data = {
        name: (
            ("time", "level", "longitude", "latitude"),
            rng.standard_normal((frames, t, nlon, nlat)).astype(np.float32),
            {"units": UNITS[name], "long_name": name},
        )
        for name in UPPER
    }
    for name in SURFACE:
        data[name] = (
            ("time", "longitude", "latitude"),
            rng.standard_normal((frames, nlon, nlat)).astype(np.float32),
            {"units": UNITS[name]},
        )
    data["geopotential_at_surface"] = (("longitude", "latitude"), np.ones((nlon, nlat), np.float32))
    half = 90.0 / nlat
    coords = {
        "time": pd.date_range(start, periods=frames, freq="6h"),
        "level": np.array(WB2_LEVELS, np.int64),
        "longitude": np.arange(nlon) * 360.0 / nlon,
        "latitude": np.linspace(-90.0 + half, 90.0 - half, nlat),  # ±87.1875 for 32
    }
    return _write(url, xr.Dataset(data, coords=coords))


def mock_arco_store(url: str, *, hours: int = 30, nlat: int = 9, nlon: int = 16) -> xr.Dataset:
    """ARCO-ERA5's 0.25° store in miniature: hourly, ``(time, [level,] latitude, longitude)``,
    latitude descending from 90 to -90 (poles included), 37 levels, from 2020-01-01."""
    rng = np.random.default_rng(1)
    data = {
        name: (
            ("time", "level", "latitude", "longitude"),
            rng.standard_normal((hours, len(ARCO_LEVELS), nlat, nlon)).astype(np.float32),
            {"units": UNITS[name]},
        )
        for name in UPPER
    }
    for name in SURFACE:
        data[name] = (
            ("time", "latitude", "longitude"),
            rng.standard_normal((hours, nlat, nlon)).astype(np.float32),
            {"units": UNITS[name]},
        )
    sst = np.full((hours, nlat, nlon), np.nan, np.float32)  # NaN over land, never selected
    data["sea_surface_temperature"] = (("time", "latitude", "longitude"), sst, {"units": "K"})
    coords = {
        "time": pd.date_range("2020-01-01", periods=hours, freq="1h"),
        "level": np.array(ARCO_LEVELS, np.int64),
        "latitude": np.linspace(90.0, -90.0, nlat),
        "longitude": np.arange(nlon) * 360.0 / nlon,
    }
    return _write(url, xr.Dataset(data, coords=coords))


@pytest.fixture(scope="module")
def wb2(tmp_path_factory) -> tuple[str, xr.Dataset]:
    url = str(
        tmp_path_factory.mktemp("wb2") / "1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"
    )
    return url, mock_wb2_store(url)


@pytest.fixture()
def arco():
    url = "memory://arco-era5/full_37-1h-0p25deg-chunk-1.zarr-v3"
    yield url, mock_arco_store(url)
    fsspec.filesystem("memory").rm("/arco-era5", recursive=True)


def _expected(ds: xr.Dataset, variable: str, when) -> np.ndarray:
    """The fixture's value of one variable at time ``when`` as (latitude ascending, longitude)."""
    name, _, level = variable.partition("@")
    da = ds[name].sel(time=when)
    da = da.sel(level=int(level)) if level else da
    return da.transpose("latitude", "longitude").sortby("latitude").values


def test_wb2_store_gives_nine_variables_in_our_layout(wb2):
    url, ds = wb2
    sim = generate(ERA5Config(url=url, year=2020), 2, torch.Generator(), offset=1)
    assert sim.fields.shape == (2, 3, 9, 32, 64) and sim.fields.dtype == torch.float32
    assert sim.channels == CHANNELS and sim.channels[0] == "geopotential_500"
    assert np.all(np.diff(sim.y) > 0) and sim.y[0] == -87.1875  # latitude ascending
    np.testing.assert_array_equal(sim.x, ds.longitude.values)
    np.testing.assert_array_equal(sim.time, [0.0, 6.0, 12.0])  # 3 frames of 6 h: 12 h
    assert sim.units["geopotential_500"] == "m**2 s**-2" and sim.units["time"] == "h"
    assert sim.attrs["frame_interval_hours"] == 6.0 and sim.attrs["window_hours"] == 12.0
    # window 1 of 2020 starts at its 4th frame (2020-01-01T18), the store's 6th
    start = pd.Timestamp("2020-01-01T18")
    hours = (start - pd.Timestamp("1970-01-01")) / pd.Timedelta(hours=1)
    assert sim.params["window_start"].tolist() == [hours, hours + 18.0]
    # one point by raw position: store (time, level, longitude, latitude) -> ours (y=lat, x=lon)
    raw = ds["geopotential"].values[5, WB2_LEVELS.index(500)]
    assert sim.fields[0, 0, 0, 3, 7].item() == raw[7, 3]
    for s in range(2):
        for t in range(3):
            when = start + pd.Timedelta(hours=18 * s + 6 * t)
            for c, variable in enumerate(DEFAULT_VARIABLES):
                got = sim.fields[s, t, c].numpy()
                np.testing.assert_array_equal(got, _expected(ds, variable, when))


def test_arco_store_latitude_descending_hourly(arco):
    url, ds = arco
    sim = generate(ERA5Config(url=url, year=2020), 1, offset=2)
    assert sim.fields.shape == (1, 3, 9, 9, 16)
    np.testing.assert_array_equal(sim.y, np.linspace(-90, 90, 9))  # flipped to ascending
    np.testing.assert_array_equal(sim.time, [0.0, 1.0, 2.0])  # hourly: 3 frames = 2 h
    raw = ds["temperature"].values[6, ARCO_LEVELS.index(850)]  # (latitude desc, longitude)
    assert sim.fields[0, 0, 1, 0, 5].item() == raw[8, 5]  # southernmost row comes first
    for c, variable in enumerate(DEFAULT_VARIABLES):
        when = pd.Timestamp("2020-01-01T06") + pd.Timedelta(hours=1)
        np.testing.assert_array_equal(sim.fields[0, 1, c].numpy(), _expected(ds, variable, when))
    # every 6th frame: the WeatherBench2 cadence from the hourly store
    six = generate(ERA5Config(url=url, frame_step=6), 1)
    np.testing.assert_array_equal(six.time, [0.0, 6.0, 12.0])
    when = pd.Timestamp("2020-01-01T12")
    np.testing.assert_array_equal(
        six.fields[0, 2, 5].numpy(), _expected(ds, "2m_temperature", when)
    )
    # 2×2 block means; the ninth latitude row does not fill a block and is dropped
    coarse = generate(ERA5Config(url=url, coarsen=2), 1)
    assert coarse.fields.shape == (1, 3, 9, 4, 8)
    fine = _expected(ds, "mean_sea_level_pressure", pd.Timestamp("2020-01-01"))[:8]
    blocks = fine.reshape(4, 2, 8, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(coarse.fields[0, 0, 8].numpy(), blocks, atol=1e-6)
    np.testing.assert_allclose(coarse.y, [-78.75, -33.75, 11.25, 56.25])


def test_windows_streaming_and_bad_requests(wb2):
    url, _ = wb2
    cfg = ERA5Config(url=url, variables=("2m_temperature", "temperature@850"))
    assert n_windows(cfg) == 4  # 14 frames of 2020 in the fixture
    sims = list(iter_windows(cfg, batch=3))
    assert [s.fields.shape[0] for s in sims] == [3, 1]
    assert sims[0].channels == ("2m_temperature", "temperature_850")
    with pytest.raises(ERA5Error, match=r"holds 4 windows"):
        generate(cfg, 2, offset=3)
    with pytest.raises(ERA5Error, match=r"no variable 'relative_humidity'") as exc:
        generate(ERA5Config(url=url, variables=("relative_humidity@850",)), 1)
    assert url in str(exc.value)
    with pytest.raises(ERA5Error, match=r"no level 825"):
        generate(ERA5Config(url=url, variables=("temperature@825",)), 1)
    with pytest.raises(ERA5Error, match=r"name a level, e\.g\. temperature@"):
        generate(ERA5Config(url=url, variables=("temperature",)), 1)
    with pytest.raises(ERA5Error, match=r"0 frames in 2021"):
        generate(ERA5Config(url=url, year=2021), 1)
    with pytest.raises(ValueError, match="stride"):
        ERA5Config(stride=2)
    with pytest.raises(ERA5Error, match="does not exist"):
        generate(ERA5Config(url=url + ".missing"), 1)


def test_unreachable_bucket_fails_in_seconds_naming_the_url():
    """No machine here reaches a bucket: gcsfs really tries, the probe's deadline bounds it."""
    url = "gs://incdyn-unreachable-test-bucket/era5/1959-2023_01_10-6h-64x32.zarr"
    t0 = time.perf_counter()
    with pytest.raises(ERA5Error) as exc:
        generate(ERA5Config(url=url), 1)
    elapsed = time.perf_counter() - t0
    assert url in str(exc.value)
    assert elapsed < 30.0, f"took {elapsed:.1f} s"


def test_build_store_round_trip_with_time_splits(wb2, tmp_path):
    url, ds = wb2
    sizes = {"train": 2, "val": 1, "test": 1}
    family = MaskFamily(kind="station", stations=3, radius=5.0)
    config = store_config(
        source="era5",
        preset="wb2_64x32",
        params={"url": url, "year": 2020, "variables": list(DEFAULT_VARIABLES)},
        sizes=sizes,
        chunk=1,
        family=family,
        seed=0,
    )
    assert [split_offset(config, s) for s in ("train", "val", "test")] == [0, 2, 3]
    store = str(tmp_path / "era5.zarr")
    assert build_store(store, config, progress=False, use_ray=False) == "generated"
    train = xr.open_zarr(store, group="train")
    field, mask = train["field"].values, train["mask"].values
    assert list(train["channel"].values) == list(CHANNELS)
    assert np.all(np.diff(train["y"].values) > 0)
    assert np.isnan(field).transpose(0, 1, 3, 4, 2)[~mask].all()  # NaN at every unobserved point
    assert np.isfinite(field.transpose(0, 1, 3, 4, 2)[mask]).all()
    assert "truth" not in train
    starts = [xr.open_zarr(store, group=s)["window_start"].values for s in ("train", "val", "test")]
    days = pd.to_datetime(np.concatenate(starts))
    assert list(days) == list(pd.date_range("2020-01-01", periods=4, freq="18h"))  # in time order
    test = xr.open_zarr(store, group="test")
    when = pd.Timestamp("2020-01-03T06") + pd.Timedelta(hours=12)
    np.testing.assert_array_equal(
        test["truth"].values[0, 2, 6], _expected(ds, "10m_u_component_of_wind", when)
    )
    attrs = dict(zarr.open_group(store, mode="r").attrs)
    assert attrs["frame_interval_hours"] == 6.0 and attrs["window_hours"] == 12.0
    assert attrs["normalization"]["channels"] == list(CHANNELS)
    assert train["field"].attrs["channel_units"][0] == "m**2 s**-2"
    # asking for more windows than the year holds fails before anything is written
    too_many = {**config, "sizes": {"train": 3, "val": 1, "test": 1}}
    with pytest.raises(ERA5Error, match="holds 4 windows"):
        build_store(str(tmp_path / "big.zarr"), too_many, progress=False, use_ray=False)
    assert not (tmp_path / "big.zarr").exists()


def test_registered_as_an_ordered_source():
    gen = GENERATORS["era5"]
    assert gen.ordered and gen.config_cls is ERA5Config and gen.channels == CHANNELS
    cfg = make_config("era5", "arco_6h", {"variables": ["2m_temperature"], "year": 2019})
    assert cfg.variables == ("2m_temperature",) and cfg.frame_step == 6 and cfg.year == 2019


def test_spec_selects_era5_with_a_variable_list():
    from incdyn.platform.spec import parse_spec

    params = {"url": "memory://x.zarr", "variables": ["2m_temperature", "geopotential@500"]}
    spec = parse_spec(
        {
            "name": "t",
            "data": {"source": "era5", "preset": "wb2_64x32", "params": params},
            "methods": [{"name": "ours"}],
        }
    )
    cfg = make_config(spec.data.source, spec.data.preset, dict(spec.data.params))
    assert cfg.variables == ("2m_temperature", "geopotential@500") and cfg.url == "memory://x.zarr"
