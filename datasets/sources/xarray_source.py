"""Any gridded data set xarray can open (zarr or netCDF; local, ``memory://``, ``gs://``), cut
into windows of ``window`` frames every ``stride`` frames, with splits contiguous in time.

The file's dimensions play the roles ``dims = [time, y, x]`` (any names, any order in the file:
every variable is transposed by name); ``variables`` are the channels. Gaps are NaN (CF
``_FillValue``/``missing_value`` are decoded to NaN by xarray). A point missing at every time
in any variable is outside the **domain** (land under a sea-surface field): never observed,
never imputed, never scored. Two uses:

- ``gaps: benchmark`` — the file is complete inside the domain; the spec's observation family
  is drawn on top and val/test keep the truth, as for the simulators;
- ``gaps: real`` — the file's own NaN are the observation mask; val/test hold no truth (score
  on held-out observed points, ``evaluation.holdout``).

The time axis is cut by ``split`` fractions into train | val | test periods; a split's windows
lie inside its period, so no frame is shared between splits. Sample ``i`` of a split is its
``i``-th window. Reads are lazy: a window reads only its frames, and the domain is a chunked
reduction over time, so a file larger than memory is never loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import xarray as xr

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.store import StoreError

SPLIT_NAMES = ("train", "val", "test")


class XarraySourceError(StoreError):
    """The data set does not fit the spec: the message names the ``data.params`` field."""


@dataclass(frozen=True)
class XarrayConfig:
    """Attributes:
    url: zarr store or netCDF file (path, ``memory://``, ``gs://``, or ``package://PKG/PATH``
        for a file shipped inside an installed package).
    variables: the channels, in order.
    dims: the file's dimension names for ``[time, y, x]``.
    window: frames per sample; stride: frames between window starts.
    split: fractions of the time axis for train, val, test (summing to 1).
    gaps: ``benchmark`` (complete inside the domain; masks drawn on top) or ``real``.
    engine: xarray engine (empty: ``zarr`` for ``.zarr``/``memory://``/``gs://``, else netCDF).
    """

    url: str = ""
    variables: tuple[str, ...] = ()
    dims: tuple[str, ...] = ("time", "y", "x")
    window: int = 4
    stride: int = 1
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    gaps: str = "benchmark"
    engine: str = ""

    def __post_init__(self) -> None:
        checks = [
            (len(self.dims) == 3, "dims", "give three names: [time, y, x]"),
            (self.window >= 1 and self.stride >= 1, "window", "window and stride must be >= 1"),
            (
                len(self.split) == 3 and abs(sum(self.split) - 1) < 1e-9,
                "split",
                "three fractions summing to 1",
            ),
            (self.gaps in ("benchmark", "real"), "gaps", "one of 'benchmark', 'real'"),
        ]
        for ok, name, fix in checks:
            if not ok:
                raise XarraySourceError(f"data.params.{name}: {fix}")


PRESETS = {"default": XarrayConfig()}
CHANNELS: tuple[str, ...] = ()  # the config's variables


def resolve_url(url: str) -> str:
    """``package://PKG/PATH`` (a file shipped inside an installed package) → its path."""
    if not url.startswith("package://"):
        return url
    package, _, path = url[len("package://") :].partition("/")
    from importlib.resources import files

    return str(files(package).joinpath(path))


def _engine(cfg: XarrayConfig) -> str:
    if cfg.engine:
        return cfg.engine
    zarr_like = cfg.url.rstrip("/").endswith(".zarr") or cfg.url.startswith(("memory://", "gs://"))
    return "zarr" if zarr_like else "netcdf4"


@lru_cache(maxsize=4)
def open_source(cfg: XarrayConfig) -> xr.Dataset:
    """Open lazily (dask chunks over time) and check names, time order and variables."""
    if not cfg.url or not cfg.variables:
        raise XarraySourceError(
            "data.params.url and data.params.variables: name the file and its variables"
        )
    options = {"token": "anon"} if cfg.url.startswith(("gs://", "gcs://")) else None
    try:
        if _engine(cfg) == "zarr":
            ds = xr.open_zarr(cfg.url, storage_options=options, chunks={})
        else:
            ds = xr.open_dataset(resolve_url(cfg.url), engine=_engine(cfg), chunks={})
    except Exception as exc:
        raise XarraySourceError(f"data.params.url: cannot open {cfg.url}: {exc}") from exc
    missing = [d for d in cfg.dims if d not in ds.dims]
    if missing:
        raise XarraySourceError(
            f"data.params.dims: {missing} not in {cfg.url}; its dimensions: {sorted(ds.dims)}"
        )
    absent = [v for v in cfg.variables if v not in ds.data_vars]
    if absent:
        raise XarraySourceError(
            f"data.params.variables: {absent} not in {cfg.url}; its variables: {sorted(ds.data_vars)}"
        )
    for v in cfg.variables:
        extra = set(ds[v].dims) - set(cfg.dims)
        if any(ds.sizes[d] != 1 for d in extra):
            raise XarraySourceError(
                f"data.params.variables: {v!r} has dims {ds[v].dims}; only {list(cfg.dims)} and "
                "length-1 dims are allowed (select a level first)"
            )
    t = ds[cfg.dims[0]].values
    if t.size > 1 and not (np.diff(t) > np.zeros_like(np.diff(t))).all():
        kind = "duplicated" if len(np.unique(t)) < t.size else "not increasing"
        raise XarraySourceError(
            f"data.params.dims: time {cfg.dims[0]!r} of {cfg.url} is {kind}; sort it and drop duplicates"
        )
    return ds


def _array(ds: xr.Dataset, cfg: XarrayConfig, v: str) -> xr.DataArray:
    a = ds[v]
    a = a.squeeze([d for d in a.dims if d not in cfg.dims])
    return a.transpose(*cfg.dims)


@lru_cache(maxsize=4)
def domain_of(cfg: XarrayConfig) -> np.ndarray:
    """bool ``(H, W)``: points observed at least once in every variable (a chunked reduction)."""
    ds = open_source(cfg)
    inside = None
    for v in cfg.variables:
        seen = _array(ds, cfg, v).notnull().any(cfg.dims[0]).values
        if not seen.any():
            raise XarraySourceError(
                f"data.params.variables: {v!r} is NaN everywhere in {cfg.url}; drop it"
            )
        inside = seen if inside is None else inside & seen
    return inside


def split_windows(cfg: XarrayConfig) -> dict[str, list[int]]:
    """First frame of every window of each split; each split's windows lie in its period."""
    n = open_source(cfg).sizes[cfg.dims[0]]
    edges = np.round(np.cumsum([0.0, *cfg.split]) * n).astype(int)
    out = {}
    for name, a, b in zip(SPLIT_NAMES, edges[:-1], edges[1:], strict=True):
        if b - a < cfg.window:
            raise XarraySourceError(
                f"data.params.window: {cfg.window} frames are longer than the {name} split "
                f"({b - a} of {n} frames); shorten the window or change data.params.split"
            )
        out[name] = list(range(a, b - cfg.window + 1, cfg.stride))
    return out


def generate(
    cfg: XarrayConfig, n: int, generator: torch.Generator, *, split: str, start: int
) -> Simulation:
    """Windows ``start : start + n`` of ``split`` (``generator`` is unused: the data are fixed)."""
    starts = split_windows(cfg)[split]
    if start + n > len(starts):
        raise XarraySourceError(
            f"data.n_{split}: {start + n} samples asked, the {split} split of {cfg.url} has "
            f"{len(starts)} windows of {cfg.window} frames every {cfg.stride}"
        )
    ds, domain = open_source(cfg), domain_of(cfg)
    time_dim = cfg.dims[0]
    fields = np.stack(
        [
            np.stack(
                [
                    _array(ds, cfg, v).isel({time_dim: slice(s, s + cfg.window)}).values
                    for v in cfg.variables
                ],
                axis=1,
            )
            for s in starts[start : start + n]
        ]
    ).astype(np.float32)  # (n, T, C, H, W)
    fields[..., ~domain] = np.nan
    observed = np.isfinite(fields).all(axis=2)
    masks = torch.from_numpy(observed) if cfg.gaps == "real" else None
    if cfg.gaps == "benchmark" and not observed[..., domain].all():
        raise XarraySourceError(
            f"data.params.gaps: {cfg.url} has gaps inside its domain; use gaps: real, or a "
            "complete file for a benchmark"
        )
    y, x = (ds[d].values if d in ds.coords else np.arange(ds.sizes[d]) for d in cfg.dims[1:])
    return Simulation(
        fields=torch.from_numpy(fields),  # NaN outside the domain (and at real gaps)
        params={},
        channels=tuple(cfg.variables),
        time=np.arange(cfg.window, dtype=np.float64),
        y=np.asarray(y, np.float64),
        x=np.asarray(x, np.float64),
        units={v: str(ds[v].attrs.get("units", "")) for v in cfg.variables},
        attrs={"source_url": cfg.url, "dims": list(cfg.dims), "gaps": cfg.gaps},
        masks=masks,
        domain=domain,
    )
