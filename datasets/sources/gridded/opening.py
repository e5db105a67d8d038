"""Opening a gridded file lazily (no dask: a read touches only the chunks it needs) and checking,
before any work starts, that its names and time axis fit the config."""

from __future__ import annotations

import asyncio
import re
import warnings
from functools import lru_cache

import fsspec
import numpy as np
import xarray as xr
from fsspec.asyn import sync

from incdyn.datasets.errors import DataAssumption
from incdyn.datasets.sources.gridded.config import XarrayConfig, XarraySourceError, parse_variable

REMOTE = ("gs://", "gcs://")


def resolve_url(url: str) -> str:
    """``package://PKG/PATH`` (a file shipped inside an installed package) → its path."""
    if not url.startswith("package://"):
        return url
    package, _, path = url[len("package://") :].partition("/")
    from importlib.resources import files

    return str(files(package).joinpath(path))


def engine_of(url: str, engine: str = "") -> str:
    if engine:
        return engine
    zarr_like = url.rstrip("/").endswith(".zarr") or url.startswith(("memory://", *REMOTE))
    return "zarr" if zarr_like or ".zarr" in url else "netcdf4"


def _probe(url: str, options: dict, timeout: float) -> None:
    """Fail fast and clearly when the file is unreachable or absent."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
        if fs.async_impl:

            async def first_answer():  # wait_for cancels gcsfs's retries at the deadline
                return await asyncio.wait_for(fs._info(path), timeout)

            sync(fs.loop, first_answer)
        else:
            fs.info(path)
    except FileNotFoundError:
        raise XarraySourceError(f"data.params.url: {url} does not exist") from None
    except TimeoutError as exc:  # asyncio's and fsspec's timeouts are TimeoutErrors
        raise XarraySourceError(
            f"data.params.url: {url} is unreachable: no answer within {timeout:g} s "
            "(no network, or the bucket is down); check the URL and the connection"
        ) from exc
    except Exception as exc:
        raise XarraySourceError(
            f"data.params.url: {url} is unreachable: {type(exc).__name__}: {exc}"
        ) from exc


@lru_cache(maxsize=8)
def open_file(
    url: str, engine: str = "", timeout_s: float = 10.0, storage_options: tuple = ()
) -> xr.Dataset:
    """The file as a lazy dataset (anonymous access for ``gs://`` unless options are given)."""
    if not url:
        raise XarraySourceError("data.params.url: name the zarr store or netCDF file")
    path = resolve_url(url)
    options = dict(storage_options)
    if not options and url.startswith(REMOTE):
        options = {"token": "anon"}
    _probe(path, options, timeout_s)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if engine_of(url, engine) == "zarr":
                ds = xr.open_zarr(path, storage_options=options or None, chunks=None)
            else:
                ds = xr.open_dataset(path, engine=engine_of(url, engine), chunks=None)
    except Exception as exc:
        raise XarraySourceError(f"data.params.url: cannot open {url}: {exc}") from exc
    _reissue(caught, url)
    return ds


# xarray's words for a reference date it had to complete ("hours since 1-1-1 00:00:0.0")
AMBIGUOUS_DATE = re.compile(
    r"Ambiguous reference date string: (?P<given>.+?)\. .*reference date string is: "
    r"(?P<read>.+?)\)"
)


def _reissue(caught: list[warnings.WarningMessage], url: str) -> None:
    """xarray's decoding warnings (a time axis decoded with an assumption): one
    :class:`DataAssumption` that says what was assumed; any other warning as it was."""
    assumed = []
    for w in caught:
        if not issubclass(w.category, xr.SerializationWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        text = str(w.message)
        if found := AMBIGUOUS_DATE.search(text):
            text = (
                f"the reference date {found['given']!r} of its time units is ambiguous, read "
                f"as {found['read']} (year first; write the year with four digits to be sure)"
            )
        else:  # xarray's own words, less how to silence them
            text = re.split(r"\.? To (?:silence|remove) this", text)[0]
        assumed.append(text)
    if assumed:
        said = "; ".join(dict.fromkeys(assumed))
        warnings.warn(DataAssumption(f"data.params.url: {url}: {said}"), stacklevel=1)


def variable(ds: xr.Dataset, cfg: XarrayConfig, name: str) -> xr.DataArray:
    """One variable (``name`` or ``name@LEVEL``), its roles' dims only, in the file's order."""
    base, level = parse_variable(name)
    if base not in ds.data_vars:
        some = ", ".join(sorted(map(str, ds.data_vars))[:12])
        raise XarraySourceError(
            f"data.params.variables: {cfg.url} has no variable {base!r} (it has {some}); "
            "name one of these"
        )
    a = ds[base]
    if level is not None:
        if cfg.level_dim not in a.dims:
            raise XarraySourceError(
                f"data.params.variables: {base!r} has no {cfg.level_dim!r} dimension; drop @{level}"
            )
        levels = ds[cfg.level_dim].values
        if level not in levels:
            raise XarraySourceError(
                f"data.params.variables: {base!r} has no level {level} on {cfg.level_dim!r}; "
                f"levels: {[v.item() for v in levels]}"
            )
        a = a.sel({cfg.level_dim: level})
    extra = [d for d in a.dims if d not in cfg.dims]
    if any(a.sizes[d] != 1 for d in extra):
        hint = (
            f"; name a level, e.g. {base}@{ds[cfg.level_dim].values[-1].item()}"
            if (cfg.level_dim in extra)
            else "; select one value of the others first"
        )
        raise XarraySourceError(
            f"data.params.variables: {name!r} has dims {a.dims}; only the roles "
            f"{list(cfg.dims)} and length-1 dims are allowed{hint}"
        )
    return a.squeeze(extra)


def open_source(cfg: XarrayConfig) -> xr.Dataset:
    """Open ``cfg.url`` and check its dims, variables and time axis (errors name the field)."""
    if not cfg.variables:
        raise XarraySourceError("data.params.variables: name the file's variables (the channels)")
    ds = open_file(cfg.url, cfg.engine, cfg.timeout_s, cfg.storage_options)
    missing = [d for d in cfg.dims if d not in ds.dims]
    if missing:
        raise XarraySourceError(
            f"data.params.dims: {missing} not in {cfg.url}; its dimensions: "
            f"{sorted(map(str, ds.dims))} (dims: {{time: NAME, y: NAME, x: NAME}})"
        )
    for name in cfg.variables:
        a = variable(ds, cfg, name)
        absent = [d for d in cfg.dims if d not in a.dims]
        if absent:
            raise XarraySourceError(
                f"data.params.variables: {name!r} lacks the dims {absent} (it has {a.dims})"
            )
    t = ds[cfg.dims[0]].values
    step = np.diff(t)
    if t.size > 1 and not (step > np.zeros_like(step)).all():
        kind = "duplicated" if len(np.unique(t)) < t.size else "not increasing"
        raise XarraySourceError(
            f"data.params.dims: time {cfg.dims[0]!r} of {cfg.url} is {kind}; sort it and drop "
            "duplicates (ds.sortby(time).drop_duplicates(time)) before writing the file"
        )
    return ds
