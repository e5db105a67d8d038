"""The grid a sample sees: the file's rows and columns in incdyn's order (ascending when asked),
block-averaged by ``coarsen``, and the file indices behind any tile of it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from incdyn.datasets.sources.gridded.config import XarrayConfig


def coarsen_mean(a: np.ndarray, k: int, axes: tuple[int, ...]) -> np.ndarray:
    """Mean over ``k``-blocks along ``axes`` (lengths already multiples of ``k``)."""
    for ax in axes:
        n = a.shape[ax] // k
        a = a.reshape(*a.shape[:ax], n, k, *a.shape[ax + 1 :]).mean(axis=ax + 1)
    return a


@dataclass(frozen=True)
class Grid:
    """Attributes:
    rows, cols: file indices of the fine rows/columns, in the grid's order, trimmed to whole
        ``coarsen`` blocks.
    k: the coarsening factor.
    y, x: coordinates of the (coarsened) grid.
    units: units of the y and x coordinates.
    """

    rows: np.ndarray
    cols: np.ndarray
    k: int
    y: np.ndarray
    x: np.ndarray
    units: dict[str, str]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.y), len(self.x)

    def index(self, corner: tuple[int, int] = (0, 0), size: int = 0) -> tuple[np.ndarray, ...]:
        """File row and column indices of a ``size`` tile at ``corner`` (0: the whole grid)."""
        h, w = (size, size) if size else self.shape
        r, c = corner
        return self.rows[r * self.k : (r + h) * self.k], self.cols[c * self.k : (c + w) * self.k]

    def read(self, a: xr.DataArray, cfg: XarrayConfig, time, corner=(0, 0)) -> np.ndarray:
        """float32 ``(T, h, w)`` of ``a`` (dims in the file's order) at the ``time`` positions."""
        rows, cols = self.index(corner, cfg.patch)
        t, y, x = cfg.dims
        part = a.isel({t: time, y: as_slice(rows), x: as_slice(cols)}).transpose(t, y, x)
        values = np.asarray(part.values, dtype=np.float32)
        if self.k > 1:
            values = coarsen_mean(values, self.k, (1, 2)).astype(np.float32)
        return values


def as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A contiguous run as a slice (a plain read), else the index array (ascending order)."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[-1]) + 1)
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] - len(index), -1)):
        return slice(int(index[0]), None if index[-1] == 0 else int(index[-1]) - 1, -1)
    return index


def grid_of(ds: xr.Dataset, cfg: XarrayConfig) -> Grid:
    out = {}
    for role, dim in zip(("y", "x"), cfg.dims[1:], strict=True):
        n = ds.sizes[dim]
        coord = ds[dim].values.astype(np.float64) if dim in ds.coords else np.arange(float(n))
        order = np.argsort(coord, kind="stable") if cfg.ascending else np.arange(n)
        order = order[: n // cfg.coarsen * cfg.coarsen]
        values = coord[order]
        if cfg.coarsen > 1:
            values = coarsen_mean(values, cfg.coarsen, (0,))
        unit = str(ds[dim].attrs.get("units", "")) if dim in ds.coords else ""
        out[role] = (order, values, unit)
    (rows, y, uy), (cols, x, ux) = out["y"], out["x"]
    return Grid(rows, cols, cfg.coarsen, y, x, {"y": uy, "x": ux})
