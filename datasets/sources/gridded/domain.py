"""The domain: grid points that are data at all (sea under a sea-surface field, inside a radar's
range). Outside it a point is never an input, never imputed (NaN), never scored.

``missing``: outside where any variable is missing at every kept frame, a reduction over time
in blocks of bounded size (a file larger than memory is never loaded whole); ``all``: every
point inside; ``{variable: NAME}`` (optionally ``url: FILE``, ``inside: zero``): a mask variable
of this file or another, inside where it is non-zero (or zero).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from incdyn.datasets.sources.gridded.config import XarrayConfig, XarraySourceError
from incdyn.datasets.sources.gridded.grid import Grid, as_slice, coarsen_mean
from incdyn.datasets.sources.gridded.opening import open_file, variable
from incdyn.datasets.sources.gridded.windows import Frames

BLOCK_BYTES = 4 * 2**20  # frames per read of the time reduction (decoding holds ~3 × this)


def _blocked(values: np.ndarray, k: int) -> np.ndarray:
    """A coarse cell is inside when all of its fine points are."""
    return values if k == 1 else coarsen_mean(values.astype(np.float64), k, (0, 1)) == 1.0


def _seen(a: xr.DataArray, cfg: XarrayConfig, grid: Grid, frames: Frames, name: str) -> np.ndarray:
    """bool (fine rows, cols): observed at least once over the kept frames."""
    rows, cols = grid.index()
    per_frame = max(len(rows) * len(cols) * a.dtype.itemsize, 1)
    step = max(1, BLOCK_BYTES // per_frame)
    t, y, x = cfg.dims
    seen = np.zeros((len(rows), len(cols)), bool)
    for i in range(0, len(frames.positions), step):
        count = min(step, len(frames.positions) - i)
        where = {t: frames.span(i, count), y: as_slice(rows), x: as_slice(cols)}
        block = a.isel(where).transpose(t, y, x)
        seen |= np.isfinite(np.asarray(block.values, dtype=np.float32)).any(axis=0)
    if not seen.any():
        raise XarraySourceError(
            f"data.params.variables: {name!r} is NaN everywhere in {cfg.url}; drop it"
        )
    return seen


def _from_variable(ds: xr.Dataset, cfg: XarrayConfig, grid: Grid) -> np.ndarray:
    opts = dict(cfg.domain)
    url = opts.get("url", cfg.url)
    source = ds if url == cfg.url else open_file(url, "", cfg.timeout_s)
    if opts["variable"] not in source.data_vars:
        raise XarraySourceError(
            f"data.params.domain: {url} has no variable {opts['variable']!r} "
            f"(it has {sorted(map(str, source.data_vars))})"
        )
    a = source[opts["variable"]]
    t, y, x = cfg.dims
    if t in a.dims:
        a = a.isel({t: 0})
    a = a.squeeze([d for d in a.dims if d not in (y, x) and a.sizes[d] == 1])
    if set(a.dims) != {y, x} or a.sizes[y] != ds.sizes[y] or a.sizes[x] != ds.sizes[x]:
        raise XarraySourceError(
            f"data.params.domain: {opts['variable']!r} of {url} has dims {dict(a.sizes)}; it "
            f"must cover the grid ({y}: {ds.sizes[y]}, {x}: {ds.sizes[x]})"
        )
    rows, cols = grid.index()
    part = a.isel({y: as_slice(rows), x: as_slice(cols)}).transpose(y, x)
    values = np.asarray(part.values, dtype=np.float64)
    nonzero = np.isfinite(values) & (values != 0)
    return nonzero if opts.get("inside", "nonzero") == "nonzero" else np.isfinite(values) & ~nonzero


def domain_mask(ds: xr.Dataset, cfg: XarrayConfig, grid: Grid, frames: Frames) -> np.ndarray:
    """bool ``(H, W)`` of the (coarsened) grid: True inside the domain."""
    if cfg.domain == "all":
        return np.ones(grid.shape, bool)
    if cfg.domain == "missing":
        inside = np.ones((len(grid.rows), len(grid.cols)), bool)
        for name in cfg.variables:
            inside &= _seen(variable(ds, cfg, name), cfg, grid, frames, name)
    else:
        inside = _from_variable(ds, cfg, grid)
    inside = _blocked(inside, grid.k)
    if not inside.any():
        raise XarraySourceError(f"data.params.domain: no point of {cfg.url} is inside the domain")
    return inside
