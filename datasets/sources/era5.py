"""ERA5 reanalysis from WeatherBench2 / ARCO-ERA5 zarr stores: one configuration of the general
gridded source (:mod:`.xarray_source`), not a second code path.

What is ERA5's own lives here: the stores' URLs and presets, the default variables
(``name`` or ``name@level`` in hPa), the units ECMWF leaves out, and the schema: dims ``time``,
``latitude``/``lat``, ``longitude``/``lon`` (WeatherBench2's 64×32 store orders
``(time, longitude, latitude)``; the 0.25° stores keep latitude descending: the grid is sorted
ascending). The general source does the rest: opening (``gs://`` anonymously through gcsfs, with
a deadline), transposing by name, one calendar year as the ``period``, ``frame_step`` and
``coarsen``, windows of ``frames`` frames every ``stride``.

Time: a window's ``time`` coordinate is hours since the window's first frame (``[0, 6, 12]`` for
3 frames of a 6-hourly store: one sample spans 12 h; ``[0, 1, 2]`` on the hourly ARCO store, or
``[0, 6, 12]`` there with ``frame_step=6``); each sample's start is the per-sample variable
``window_start`` (hours since 1970-01-01). The store's root attrs repeat the cadence
(``frame_interval_hours``, ``window_hours``).

Splits by time (``split: ordered``): :func:`generate` reads windows in order, from ``offset``
on. ``build_store`` passes ``offset`` = the sample's position in ``train | val | test``, so the
training windows come first in the year, then validation, then test; windows never share frames
(``stride >= frames``), so the splits never overlap.

    from incdyn.datasets.sources.era5 import PRESETS, generate
    sim = generate(PRESETS["wb2_64x32"], n=8, offset=0)  # 8 windows of 12 h from 2020-01-01
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from pydantic import Field, ValidationInfo, field_validator

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.source_config import Int, Number, SourceConfig
from incdyn.datasets.sources import xarray_source
from incdyn.datasets.sources.gridded.config import (
    XarrayConfig,
    XarraySourceError,
    channel_name,
    distinct_channels,
    parse_variable,
)
from incdyn.datasets.sources.gridded.opening import open_file

WB2_64X32 = (
    "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"
)
ARCO_1H = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
DEFAULT_VARIABLES = (
    "geopotential@500",
    "temperature@850",
    "u_component_of_wind@850",
    "v_component_of_wind@850",
    "specific_humidity@700",
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
)
# used when a store's variable has no ``units`` attribute (ECMWF's spelling)
UNITS = {
    "geopotential": "m**2 s**-2",
    "temperature": "K",
    "u_component_of_wind": "m s**-1",
    "v_component_of_wind": "m s**-1",
    "specific_humidity": "kg kg**-1",
    "2m_temperature": "K",
    "10m_u_component_of_wind": "m s**-1",
    "10m_v_component_of_wind": "m s**-1",
    "mean_sea_level_pressure": "Pa",
}
ERA5Error = XarraySourceError  # an ERA5 store is unreachable, or lacks a variable, level or year

CHANNELS = tuple(channel_name(v) for v in DEFAULT_VARIABLES)


class ERA5Config(SourceConfig):
    """Windows of one year of an ERA5 zarr store.

    Attributes:
        url: the store (``gs://...``, a path, ``file://`` or ``memory://``).
        variables: ``name`` (single level) or ``name@level`` (pressure level in hPa), one channel
            each, in order.
        year: calendar year whose frames are cut into windows.
        frames: frames per window (sample); at a 6-hourly store's cadence 3 frames span 12 h.
        stride: frames between the starts of consecutive windows; ``>= frames`` (no shared frames).
        frame_step: keep every ``frame_step``-th store frame (6 turns hourly ARCO into 6-hourly).
        coarsen: average ``coarsen × coarsen`` grid cells (rows/columns that do not fill a block
            are dropped: ARCO's 721 latitudes with ``coarsen=8`` give 90).
        storage_options: fsspec options; None gives ``{"token": "anon"}`` for ``gs://`` URLs.
        timeout_s: seconds to wait for the store's first answer before failing (gcsfs itself
            retries a dead network for about half a minute).
    """

    url: str = WB2_64X32
    variables: tuple[str, ...] = Field(DEFAULT_VARIABLES, min_length=1)
    year: Int = 2020
    frames: Int = Field(3, ge=1)
    stride: Int = Field(3, ge=1)
    frame_step: Int = Field(1, ge=1)
    coarsen: Int = Field(1, ge=1)
    storage_options: dict[str, Any] | None = None
    timeout_s: Number = Field(10.0, gt=0.0)

    _variables = field_validator("variables")(distinct_channels)

    @field_validator("stride")
    @classmethod
    def _disjoint(cls, stride: int, info: ValidationInfo) -> int:
        frames = info.data.get("frames")
        if frames is not None and stride < frames:
            raise ValueError(
                f"expected stride >= frames={frames}: windows that share frames would let the "
                "train/val/test splits overlap"
            )
        return stride


PRESETS = {
    "quickstart": ERA5Config(),
    "wb2_64x32": ERA5Config(),  # 5.625°, 6-hourly: 3 frames = 12 h
    "arco_1h": ERA5Config(url=ARCO_1H, coarsen=8),  # 2°, hourly: 3 frames = 2 h
    "arco_6h": ERA5Config(url=ARCO_1H, coarsen=8, frame_step=6),  # 2°, 6-hourly: 12 h
}


def _schema(cfg: ERA5Config) -> tuple[str, str, str]:
    """The store's names for time, latitude and longitude (``lat``/``lon`` in some stores)."""
    ds = open_file(cfg.url, "zarr", cfg.timeout_s, _options(cfg))
    lat = "latitude" if "latitude" in ds.dims else "lat"
    lon = "longitude" if "longitude" in ds.dims else "lon"
    return "time", lat, lon


def _options(cfg: ERA5Config) -> tuple:
    return tuple(sorted((cfg.storage_options or {}).items()))


def as_xarray(cfg: ERA5Config) -> XarrayConfig:
    """The general source's configuration that reads what ``cfg`` describes."""
    return XarrayConfig(
        url=cfg.url,
        variables=cfg.variables,
        dims=_schema(cfg),
        window=cfg.frames,
        stride=cfg.stride,
        split="ordered",
        gaps="benchmark",  # reanalysis is complete: a NaN is an error
        engine="zarr",
        domain="all",  # no land mask: every grid point is data (and no pass over the year)
        period=(str(cfg.year), str(cfg.year)),
        frame_step=cfg.frame_step,
        coarsen=cfg.coarsen,
        level_dim="level",
        ascending=True,
        timeout_s=cfg.timeout_s,
        storage_options=_options(cfg),
    )


def load_windows(cfg: ERA5Config, offset: int, n: int) -> Simulation:
    """Windows ``offset : offset + n`` of ``cfg.year``: ``fields`` ``(n, frames, C, lat, lon)``."""
    sim = xarray_source.read_samples(as_xarray(cfg), "all", offset, n)
    units = {c: u or UNITS.get(parse_variable(v)[0], "") for c, v, u in _units(cfg, sim)}
    units.update(y="degrees_north", x="degrees_east")
    attrs = {
        **sim.attrs,
        "era5_url": cfg.url,
        "era5_year": cfg.year,
        "time_axis": "hours since each window's first frame; its date is window_start",
        "latitude_order": "ascending",
    }
    return dataclasses.replace(sim, units={**sim.units, **units}, attrs=attrs)


def _units(cfg: ERA5Config, sim: Simulation):
    return [(channel_name(v), v, sim.units.get(channel_name(v), "")) for v in cfg.variables]


def generate(
    cfg: ERA5Config, n: int, generator: torch.Generator | None = None, *, offset: int = 0
) -> Simulation:
    """``n`` windows in time order from window ``offset`` (the generator is unused: real data
    are read, not drawn; ``build_store`` gives each split its own range of offsets)."""
    del generator
    return load_windows(cfg, offset, n)


def n_windows(cfg: ERA5Config) -> int:
    """How many windows ``cfg.year`` of the store holds (the most samples of all splits together)."""
    return xarray_source.n_samples(as_xarray(cfg))


def iter_windows(cfg: ERA5Config, *, batch: int = 32, start: int = 0) -> Iterator[Simulation]:
    """Stream all windows of the year from ``start``, ``batch`` windows per :class:`Simulation`."""
    total = n_windows(cfg)
    for first in range(start, total, batch):
        yield load_windows(cfg, first, min(batch, total - first))
