"""The filled record on disk: a zarr template written first (coordinates, attributes, empty
chunked variables), then each time block written into its own region, then marked complete.

Per variable ``VAR`` of the input: ``VAR`` (filled; observed points are the input's decoded
values), ``VAR_spread``, ``VAR_lower``, ``VAR_upper``; one ``observed_flag`` (CF flags) for all
of them; ``impute_block_done`` (one entry per block, set after the block's data are written) is
what a rerun reads to fill only the rest. A netCDF output (``.nc``) is made from a staging zarr
beside it once every block is done.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import dask.array as da
import fsspec
import numpy as np
import xarray as xr

FLAG = "observed_flag"
DONE = "impute_block_done"
BLOCK_DIM = "impute_block"
FLAG_VALUES = np.array([0, 1, 2, 3, 4], np.int8)
FLAG_MEANINGS = "filled observed held_out outside_domain filled_frame_without_observations"
SETTINGS_ATTR = "incdyn_impute"
SUFFIXES = ("spread", "lower", "upper")


@dataclass(frozen=True)
class OutputPlan:
    """Where and how the output is written.

    Attributes:
        url: the output the user named; store: the zarr written block by block (``url`` itself,
            or a staging zarr beside a netCDF ``url``).
        netcdf: whether ``url`` is a netCDF file made from ``store`` at the end.
    """

    url: str
    store: str
    netcdf: bool


def output_plan(url: str) -> OutputPlan:
    netcdf = url.rstrip("/").endswith((".nc", ".nc4", ".netcdf"))
    return OutputPlan(url, f"{url}.partial.zarr" if netcdf else url, netcdf)


def exists(url: str) -> bool:
    fs, path = fsspec.core.url_to_fs(url)
    return bool(fs.exists(path))


def remove(url: str) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def output_names(names: tuple[str, ...]) -> list[str]:
    return [f"{n}{'_' + s if s else ''}" for n in names for s in ("", *SUFFIXES)]


def create_template(
    store: str,
    *,
    coords: dict[str, xr.DataArray],
    var_dims: dict[str, tuple[str, ...]],
    var_attrs: dict[str, dict],
    dtypes: dict[str, np.dtype],
    time_dim: str,
    block: int,
    n_blocks: int,
    attrs: dict,
    flag_dims: tuple[str, ...],
) -> None:
    """Write coordinates, attributes and empty variables chunked by ``block`` frames."""
    sizes = {d: c.size for d, c in coords.items()}
    data = {}
    for name, dims in var_dims.items():
        shape = tuple(sizes[d] for d in dims)
        chunks = tuple(block if d == time_dim else sizes[d] for d in dims)
        base = {
            k: v for k, v in var_attrs[name].items() if k not in ("_FillValue", "missing_value")
        }
        ancillary = " ".join([f"{name}_{s}" for s in SUFFIXES] + [FLAG])
        for suffix in ("", *SUFFIXES):
            out = f"{name}_{suffix}" if suffix else name
            a = {**base}
            if suffix:
                a["long_name"] = f"{base.get('long_name', name)}: {_describe(suffix)}"
            else:
                a["ancillary_variables"] = ancillary
            data[out] = xr.Variable(
                dims, da.full(shape, np.nan, dtype=dtypes[name], chunks=chunks), a
            )
    fshape = tuple(sizes[d] for d in flag_dims)
    fchunks = tuple(block if d == time_dim else sizes[d] for d in flag_dims)
    data[FLAG] = xr.Variable(
        flag_dims,
        da.full(fshape, 3, dtype=np.int8, chunks=fchunks),
        {
            "long_name": "how each point was obtained",
            "flag_values": FLAG_VALUES,
            "flag_meanings": FLAG_MEANINGS,
        },
    )
    data[DONE] = xr.Variable(
        (BLOCK_DIM,),
        da.zeros(n_blocks, dtype=np.int8, chunks=1),
        {"long_name": "1 where the time block has been written (a rerun fills the rest)"},
    )
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    encoding = {n: {"_FillValue": np.nan} for n in data if n not in (FLAG, DONE)}
    encoding[FLAG] = {"_FillValue": None}
    encoding[DONE] = {"_FillValue": None}
    ds.to_zarr(store, mode="w", compute=False, encoding=encoding)


def _describe(suffix: str) -> str:
    return {
        "spread": "ensemble spread (calibrated one-sigma where the model has a calibration)",
        "lower": "lower bound of the central interval",
        "upper": "upper bound of the central interval",
    }[suffix]


def write_block(
    store: str, time_dim: str, first: int, arrays: dict[str, xr.Variable], block_index: int
) -> None:
    """Write one block's variables into their time region, then mark the block done."""
    count = next(iter(arrays.values())).sizes[time_dim]
    xr.Dataset(arrays).to_zarr(store, region={time_dim: slice(first, first + count)})
    done = xr.Dataset({DONE: ((BLOCK_DIM,), np.ones(1, np.int8))})
    done.to_zarr(store, region={BLOCK_DIM: slice(block_index, block_index + 1)})


def open_store(store: str) -> xr.Dataset:
    return xr.open_zarr(store, chunks=None, consolidated=False)


def done_blocks(store: str) -> np.ndarray:
    return np.asarray(open_store(store)[DONE].values, bool)


def settings_of(store: str) -> dict:
    return json.loads(open_store(store).attrs.get(SETTINGS_ATTR, "{}"))


def finalize_netcdf(plan: OutputPlan) -> None:
    """Write the netCDF ``plan.url`` from the staging zarr (chunk by chunk), then drop it."""
    ds = xr.open_zarr(plan.store)
    ds = ds.drop_vars(DONE)
    tmp = f"{plan.url}.writing"
    ds.to_netcdf(tmp)
    ds.close()
    fs, path = fsspec.core.url_to_fs(plan.url)
    fs.mv(fsspec.core.url_to_fs(tmp)[1], path)
    if plan.store.startswith(("/", ".")) or "://" not in plan.store:
        shutil.rmtree(plan.store, ignore_errors=True)
    else:
        remove(plan.store)
