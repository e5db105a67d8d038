"""The record to fill: a gridded file opened lazily through the xarray source, its variables,
dimension roles, time range and domain, checked before anything is written.

Every check raises :class:`ImputeError` naming the option (``--variables``, ``--dims``,
``--time``, ``--input``) and the fix. Values are read only by :meth:`Record.read` (a span of
frames, every point) and by the domain (a reduction over time in bounded blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from incdyn.datasets.errors import UserError
from incdyn.datasets.sources.gridded.config import XarrayConfig, XarraySourceError
from incdyn.datasets.sources.gridded.domain import domain_mask
from incdyn.datasets.sources.gridded.grid import Grid, grid_of
from incdyn.datasets.sources.gridded.opening import open_source, variable
from incdyn.datasets.sources.gridded.windows import Frames, frames_of

OPTION_OF = {  # the data.params field a source error names → the impute option that sets it
    "url": "--input",
    "variables": "--variables",
    "dims": "--dims",
    "period": "--time",
    "domain": "--input (domain)",
}


class ImputeError(UserError):
    """The input or the options do not fit the model: the message names the option and the fix."""


def as_impute_error(exc: XarraySourceError) -> ImputeError:
    """A source error (``data.params.FIELD: ...``) worded with the impute option instead."""
    text = str(exc)
    head, _, rest = text.partition(": ")
    name = head.removeprefix("data.params.")
    return ImputeError(f"{OPTION_OF.get(name, head)}: {rest}" if rest else text)


@dataclass(frozen=True)
class Record:
    """An opened, checked record.

    Attributes:
        cfg: the source config it was opened with (url, variables, dims, period, domain).
        ds: the lazy dataset.
        frames: the frames of the time range.
        grid: the rows and columns (the file's order).
        domain: bool ``(H, W)``, None until :meth:`with_domain` (a dry run reads no values).
        var_dims: per variable, its dims in the file's order (roles only).
    """

    cfg: XarrayConfig
    ds: xr.Dataset
    frames: Frames
    grid: Grid
    domain: np.ndarray | None = None
    var_dims: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.frames.positions), *self.grid.shape)

    @property
    def names(self) -> tuple[str, ...]:
        """The variables' names in the file (a level ``@L`` becomes ``_L``)."""
        return self.cfg.channels

    def with_domain(self) -> Record:
        try:
            inside = domain_mask(self.ds, self.cfg, self.grid, self.frames)
        except XarraySourceError as exc:
            raise as_impute_error(exc) from None
        return Record(self.cfg, self.ds, self.frames, self.grid, inside, self.var_dims)

    def read(self, first: int, count: int) -> np.ndarray:
        """``(count, C, H, W)`` of frames ``first : first + count`` (NaN at gaps), in the
        decoded dtype (float32 or wider): observed values are passed on exactly."""
        span = self.frames.span(first, count)
        t, y, x = self.cfg.dims
        parts = []
        for v in self.cfg.variables:
            a = variable(self.ds, self.cfg, v).isel({t: span}).transpose(t, y, x)
            parts.append(np.asarray(a.values))
        dtype = np.result_type(np.float32, *parts)
        return np.stack([p.astype(dtype, copy=False) for p in parts], axis=1)


def open_record(
    url: str,
    variables: tuple[str, ...],
    dims: tuple[str, str, str],
    *,
    time: tuple[str, str] | None = None,
    domain: object = "missing",
) -> Record:
    """Open ``url`` and check its variables, dims and time range (no values read)."""
    if not variables:
        raise ImputeError("--variables: name the file's variables (the model's channels)")
    try:
        cfg = XarrayConfig(
            url=url,
            variables=tuple(variables),
            dims=tuple(dims),
            window=1,
            split=(1.0, 0.0, 0.0),
            gaps="real",
            period=tuple(time) if time else (),
            domain=domain,
        )
        ds = open_source(cfg)
        if time:
            _check_time(ds, cfg, time)
        frames = frames_of(ds, cfg)
        grid = grid_of(ds, cfg)
        var_dims = {v: tuple(str(d) for d in variable(ds, cfg, v).dims) for v in cfg.variables}
    except XarraySourceError as exc:
        raise as_impute_error(exc) from None
    return Record(cfg, ds, frames, grid, None, var_dims)


def _check_time(ds: xr.Dataset, cfg: XarrayConfig, time: tuple[str, str]) -> None:
    from incdyn.datasets.sources.gridded.windows import _bounds

    index = ds.indexes[cfg.dims[0]]
    try:
        _, _, outside = _bounds(index, *time)
    except (TypeError, ValueError) as exc:
        raise ImputeError(f"--time: {time[0]}:{time[1]} is not a range of times ({exc})") from None
    if outside:
        raise ImputeError(
            f"--time: {time[0]}:{time[1]} lies outside {cfg.url}, which spans {index[0]} to "
            f"{index[-1]}; give a range inside it"
        )
