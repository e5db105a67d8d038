"""ERA5 reanalysis from WeatherBench2 / ARCO-ERA5 zarr stores, as windows in the Simulation layout.

Opens a store (``gs://`` through gcsfs, anonymous by default; also local paths, ``file://``,
``memory://``), selects variables ``name`` or ``name@level`` (hPa), one calendar year, and cuts it
into windows of ``frames`` consecutive frames that become the samples. Dimensions are transposed
by name to ``(sample, time, channel, y=latitude, x=longitude)`` and latitude is sorted ascending
(WeatherBench2's 64×32 store orders ``(time, longitude, latitude)``; the 0.25° stores keep latitude
descending). Channels are named ``geopotential_500``, ``2m_temperature``, ...; units come from
each variable's ``units`` attribute.

Time: a window's ``time`` coordinate is hours since the window's first frame (``[0, 6, 12]`` for
3 frames of a 6-hourly store: one sample spans 12 h, not 3 h; ``[0, 1, 2]`` on the hourly ARCO
store, or ``[0, 6, 12]`` there with ``frame_step=6``); each sample's start is the per-sample
variable ``window_start`` (hours since 1970-01-01, which xarray decodes to datetimes). The store's
root attrs repeat the cadence (``frame_interval_hours``, ``window_hours``).

Splits by time: :func:`generate` reads windows in order, from ``offset`` on. ``build_store``
passes ``offset`` = the sample's position in ``train | val | test``, so the training windows come
first in the year, then validation, then test; windows never share frames (``stride >= frames``),
so the splits never overlap.

    from incdyn.datasets.sources.era5 import PRESETS, generate
    sim = generate(PRESETS["wb2_64x32"], n=8, offset=0)  # 8 windows of 12 h from 2020-01-01
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pandas as pd
import torch
import xarray as xr
from fsspec.asyn import sync

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.store import StoreError

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
EPOCH = pd.Timestamp("1970-01-01")
HOUR = pd.Timedelta(hours=1)


class ERA5Error(StoreError):
    """An ERA5 store is unreachable, missing, or lacks a variable, level or year (names the URL)."""


def channel_name(variable: str) -> str:
    """``"geopotential@500"`` → ``"geopotential_500"``; a single-level name is kept."""
    name, level = parse_variable(variable)
    return name if level is None else f"{name}_{level}"


def parse_variable(variable: str) -> tuple[str, int | None]:
    """``"name@level"`` → ``(name, level in hPa)``; ``"name"`` → ``(name, None)``."""
    name, _, level = variable.partition("@")
    if not name or (level and not level.isdigit()):
        raise ValueError(
            f"ERA5 variable {variable!r} must be 'name' or 'name@level' (level in hPa)"
        )
    return name, int(level) if level else None


CHANNELS = tuple(channel_name(v) for v in DEFAULT_VARIABLES)


@dataclass(frozen=True)
class ERA5Config:
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
    variables: tuple[str, ...] = DEFAULT_VARIABLES
    year: int = 2020
    frames: int = 3
    stride: int = 3
    frame_step: int = 1
    coarsen: int = 1
    storage_options: dict | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.variables:
            raise ValueError("ERA5 variables must name at least one variable")
        channels = [channel_name(v) for v in self.variables]
        if len(set(channels)) != len(channels):
            raise ValueError(f"ERA5 variables {list(self.variables)} repeat a channel")
        for name in ("frames", "frame_step", "coarsen"):
            if getattr(self, name) < 1:
                raise ValueError(f"ERA5 {name}={getattr(self, name)} must be >= 1")
        if self.stride < self.frames:
            raise ValueError(
                f"ERA5 stride={self.stride} must be >= frames={self.frames}: windows that share "
                "frames would let the train/val/test splits overlap"
            )
        if not self.timeout_s > 0:
            raise ValueError(f"ERA5 timeout_s={self.timeout_s} must be > 0")


PRESETS = {
    "quickstart": ERA5Config(),
    "wb2_64x32": ERA5Config(),  # 5.625°, 6-hourly: 3 frames = 12 h
    "arco_1h": ERA5Config(url=ARCO_1H, coarsen=8),  # 2°, hourly: 3 frames = 2 h
    "arco_6h": ERA5Config(url=ARCO_1H, coarsen=8, frame_step=6),  # 2°, 6-hourly: 12 h
}


def _storage_options(cfg: ERA5Config) -> dict:
    if cfg.storage_options is not None:
        return dict(cfg.storage_options)
    return {"token": "anon"} if cfg.url.startswith(("gs://", "gcs://")) else {}


def _probe(url: str, options: dict, timeout: float) -> None:
    """Fail fast and clearly when the store is unreachable or absent."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
        if fs.async_impl:

            async def first_answer():  # wait_for cancels gcsfs's retries at the deadline
                return await asyncio.wait_for(fs._info(path), timeout)

            sync(fs.loop, first_answer)
        else:
            fs.info(path)
    except FileNotFoundError:
        raise ERA5Error(f"ERA5 store {url} does not exist") from None
    except TimeoutError as exc:  # asyncio's and fsspec's timeouts are TimeoutErrors
        raise ERA5Error(
            f"ERA5 store {url} is unreachable: no answer within {timeout:g} s "
            "(no network, or the bucket is down); check the URL and the connection"
        ) from exc
    except Exception as exc:
        raise ERA5Error(f"ERA5 store {url} is unreachable: {type(exc).__name__}: {exc}") from exc


def open_era5(cfg: ERA5Config) -> xr.Dataset:
    """Open the store lazily (no dask: only the chunks a window needs are read)."""
    options = _storage_options(cfg)
    _probe(cfg.url, options, cfg.timeout_s)
    try:
        ds = xr.open_zarr(cfg.url, storage_options=options or None, chunks=None)
    except Exception as exc:
        raise ERA5Error(f"ERA5 store {cfg.url} cannot be opened as zarr: {exc}") from exc
    return ds.rename({k: v for k, v in {"lat": "latitude", "lon": "longitude"}.items() if k in ds})


@dataclass(frozen=True)
class _Year:
    """Positions in the store's time axis of the frames of ``cfg.year`` (after ``frame_step``)."""

    positions: np.ndarray
    times: pd.DatetimeIndex
    interval_h: float

    def windows(self, cfg: ERA5Config) -> int:
        n = len(self.positions)
        return 0 if n < cfg.frames else (n - cfg.frames) // cfg.stride + 1


def _year(ds: xr.Dataset, cfg: ERA5Config) -> _Year:
    if "time" not in ds.indexes or not isinstance(ds.indexes["time"], pd.DatetimeIndex):
        raise ERA5Error(f"ERA5 store {cfg.url} has no datetime 'time' coordinate")
    index = ds.indexes["time"]
    if not index.is_monotonic_increasing:
        raise ERA5Error(f"ERA5 store {cfg.url}: the time coordinate is not sorted")
    positions = np.flatnonzero(index.year == cfg.year)[:: cfg.frame_step]
    if len(positions) < cfg.frames:
        span = f"{index[0]:%Y-%m-%d} to {index[-1]:%Y-%m-%d}" if len(index) else "nothing"
        raise ERA5Error(
            f"ERA5 store {cfg.url} has {len(positions)} frames in {cfg.year} (it spans {span}); "
            f"a window needs {cfg.frames}"
        )
    times = index[positions]
    steps = np.diff(times.values).astype("timedelta64[s]").astype(np.float64) / 3600.0
    if len(steps) and not np.allclose(steps, steps[0]):
        raise ERA5Error(f"ERA5 store {cfg.url}: the frames of {cfg.year} are not evenly spaced")
    return _Year(positions, times, float(steps[0]) if len(steps) else 0.0)


def _field(ds: xr.Dataset, cfg: ERA5Config, variable: str, time: slice) -> xr.DataArray:
    """One variable over ``time`` as ``(time, latitude, longitude)``, still lazy."""
    name, level = parse_variable(variable)
    if name not in ds.data_vars:
        some = ", ".join(sorted(map(str, ds.data_vars))[:12])
        raise ERA5Error(f"ERA5 store {cfg.url} has no variable {name!r} (it has {some}, ...)")
    da = ds[name]
    if level is not None:
        if "level" not in da.dims:
            raise ERA5Error(f"ERA5 store {cfg.url}: {name!r} has no level dimension; drop @{level}")
        if level not in ds["level"].values:
            raise ERA5Error(
                f"ERA5 store {cfg.url}: {name!r} has no level {level} hPa; levels: "
                f"{[int(v) for v in ds['level'].values]}"
            )
        da = da.sel(level=level)
    if set(da.dims) != {"time", "latitude", "longitude"}:
        hint = f"; name a level, e.g. {name}@850" if "level" in da.dims else ""
        raise ERA5Error(
            f"ERA5 store {cfg.url}: {variable!r} has dims {da.dims}, expected time, latitude, "
            f"longitude{hint}"
        )
    return da.isel(time=time).transpose("time", "latitude", "longitude")


def _coarsen(a: np.ndarray, k: int, axes: tuple[int, ...]) -> np.ndarray:
    """Mean over ``k``-blocks along ``axes``; trailing points that do not fill a block dropped."""
    for ax in axes:
        n = a.shape[ax] // k
        a = np.take(a, np.arange(n * k), axis=ax)
        a = a.reshape(*a.shape[:ax], n, k, *a.shape[ax + 1 :]).mean(axis=ax + 1)
    return a


def load_windows(cfg: ERA5Config, offset: int, n: int, ds: xr.Dataset | None = None) -> Simulation:
    """Windows ``offset : offset + n`` of ``cfg.year``: ``fields`` ``(n, frames, C, lat, lon)``."""
    ds = open_era5(cfg) if ds is None else ds
    year = _year(ds, cfg)
    available = year.windows(cfg)
    if offset < 0 or n < 1 or offset + n > available:
        raise ERA5Error(
            f"ERA5 store {cfg.url} holds {available} windows of {cfg.frames} frames "
            f"(stride {cfg.stride}) in {cfg.year}; windows {offset}..{offset + n - 1} were asked "
            "for (lower the split sizes, or the stride)"
        )
    first = offset * cfg.stride  # in kept frames
    span = (n - 1) * cfg.stride + cfg.frames
    kept = year.positions[first : first + span]
    time = slice(int(kept[0]), int(kept[-1]) + 1, cfg.frame_step)  # positions are evenly spaced
    starts = np.arange(n)[:, None] * cfg.stride + np.arange(cfg.frames)[None, :]  # (n, frames)
    lat = ds["latitude"].values.astype(np.float64)
    lon = ds["longitude"].values.astype(np.float64)
    lat_order, lon_order = np.argsort(lat, kind="stable"), np.argsort(lon, kind="stable")
    channels, units = [], {}
    for variable in cfg.variables:  # one variable at a time: memory stays one variable's frames
        da = _field(ds, cfg, variable, time)
        values = np.asarray(da.values, dtype=np.float32)[:, lat_order][:, :, lon_order]
        if not np.isfinite(values).all():
            raise ERA5Error(f"ERA5 store {cfg.url}: {variable!r} has NaN or inf in {cfg.year}")
        if cfg.coarsen > 1:
            values = _coarsen(values, cfg.coarsen, (1, 2)).astype(np.float32)
        channels.append(values[starts])  # (n, frames, lat, lon)
        name = channel_name(variable)
        units[name] = str(da.attrs.get("units", UNITS.get(parse_variable(variable)[0], "")))
    fields = np.stack(channels, axis=2)  # (n, frames, C, lat, lon)
    lat, lon = lat[lat_order], lon[lon_order]
    if cfg.coarsen > 1:
        lat, lon = _coarsen(lat, cfg.coarsen, (0,)), _coarsen(lon, cfg.coarsen, (0,))
    start = (year.times[first + starts[:, 0]] - EPOCH) / HOUR
    units.update(
        {
            "time": "h",
            "y": "degrees_north",
            "x": "degrees_east",
            "window_start": "hours since 1970-01-01 00:00:00",
        }
    )
    return Simulation(
        fields=torch.from_numpy(np.ascontiguousarray(fields)),
        params={"window_start": torch.tensor(np.asarray(start, np.float64))},
        channels=tuple(channel_name(v) for v in cfg.variables),
        time=np.arange(cfg.frames) * year.interval_h,
        y=lat,
        x=lon,
        units=units,
        attrs={
            "era5_url": cfg.url,
            "era5_year": cfg.year,
            "frame_interval_hours": year.interval_h,
            "window_hours": (cfg.frames - 1) * year.interval_h,
            "time_axis": "hours since each window's first frame; its date is window_start",
            "latitude_order": "ascending",
        },
    )


def generate(
    cfg: ERA5Config, n: int, generator: torch.Generator | None = None, *, offset: int = 0
) -> Simulation:
    """``n`` windows in time order from window ``offset`` (the generator is unused: real data
    are read, not drawn; ``build_store`` gives each split its own range of offsets)."""
    del generator
    return load_windows(cfg, offset, n)


def n_windows(cfg: ERA5Config) -> int:
    """How many windows ``cfg.year`` of the store holds (the most samples of all splits together)."""
    return _year(open_era5(cfg), cfg).windows(cfg)


def iter_windows(cfg: ERA5Config, *, batch: int = 32, start: int = 0) -> Iterator[Simulation]:
    """Stream all windows of the year from ``start``, ``batch`` windows per :class:`Simulation`."""
    ds = open_era5(cfg)
    total = _year(ds, cfg).windows(cfg)
    for first in range(start, total, batch):
        yield load_windows(cfg, first, min(batch, total - first), ds)
