"""Where the samples lie: the kept frames of the time axis, each split's windows, and the
spatial tiles of a large grid.

Splits are contiguous in time and a split's windows lie inside its frames, so no frame is
shared between splits: by ``split`` fractions or time ranges (each split is its own sequence of
windows), or ``ordered`` (one sequence in time order, each split taking the next windows; then
``stride >= window``). A sample is a (window, tile) pair, tiles varying fastest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from incdyn.datasets.sources.gridded.config import SPLIT_NAMES, XarrayConfig, XarraySourceError


@dataclass(frozen=True)
class Frames:
    """The frames in use: positions on the file's time axis and their times."""

    positions: np.ndarray
    times: pd.Index

    def span(self, first: int, count: int) -> slice:
        """File positions of the kept frames ``first : first + count``, as a slice."""
        p = self.positions[first : first + count]
        stride = int(p[1] - p[0]) if len(p) > 1 else 1  # kept frames are evenly spaced
        return slice(int(p[0]), int(p[-1]) + 1, stride)

    @property
    def is_datetime(self) -> bool:
        return isinstance(self.times, pd.DatetimeIndex)

    def interval_hours(self) -> float:
        """The median spacing of the kept frames in hours (datetime axes only)."""
        if not self.is_datetime or len(self.times) < 2:
            return 0.0
        return float(np.median(np.diff(self.times.values)) / np.timedelta64(1, "h"))


def _bounds(index: pd.Index, start: str, end: str) -> tuple[object, object, bool]:
    """``[start, end]`` as values of ``index``, and whether the range reaches past the axis.

    Dates may be partial (``"1992"`` is all of 1992); numbers are plain values."""
    if isinstance(index, pd.DatetimeIndex):
        a, b = pd.Period(start), pd.Period(end)
        lo, hi = a.start_time, b.end_time
        outside = a.end_time < index[0] or b.start_time > index[-1]
    else:
        lo, hi = float(start), float(end)
        outside = lo < index[0] or hi > index[-1]
    return lo, hi, bool(outside)


def _range(index: pd.Index, start: str, end: str, field: str, url: str) -> tuple[int, int, bool]:
    try:
        lo, hi, outside = _bounds(index, start, end)
    except (ValueError, TypeError) as exc:
        raise XarraySourceError(
            f"data.params.{field}: [{start}, {end}] is not a range of times of {url} ({exc})"
        ) from None
    if lo > hi:
        raise XarraySourceError(f"data.params.{field}: [{start}, {end}] ends before it starts")
    ok = (index >= lo) & (index <= hi)
    where = np.flatnonzero(ok)
    return (int(where[0]), int(where[-1]) + 1, outside) if len(where) else (0, 0, True)


def frames_of(ds: xr.Dataset, cfg: XarrayConfig) -> Frames:
    """The frames of ``cfg.period`` (all when empty), every ``frame_step``-th."""
    index = ds.indexes.get(cfg.dims[0], pd.RangeIndex(ds.sizes[cfg.dims[0]]))
    positions = np.arange(len(index))
    if cfg.period:
        a, b, _ = _range(index, *cfg.period, "period", cfg.url)
        positions = positions[a:b]
    positions = positions[:: cfg.frame_step]
    if len(positions) < cfg.window:
        span = f"{index[0]} to {index[-1]}" if len(index) else "nothing"
        label = f"{cfg.period[0]}..{cfg.period[1]}" if cfg.period else "the file"
        raise XarraySourceError(
            f"data.params.period: {cfg.url} has {len(positions)} frames in {label} (it spans "
            f"{span}); a window needs {cfg.window}: widen the period or shorten the window"
        )
    return Frames(positions, index[positions])


def _split_edges(frames: Frames, cfg: XarrayConfig) -> dict[str, tuple[int, int]]:
    """Each split's frames ``[a, b)`` (indices into the kept frames)."""
    n = len(frames.positions)
    if isinstance(cfg.split[0], float):
        e = np.round(np.cumsum([0.0, *cfg.split]) * n).astype(int)
        return {s: (int(e[i]), int(e[i + 1])) for i, s in enumerate(SPLIT_NAMES)}
    out = {}
    for name, (start, end) in zip(SPLIT_NAMES, cfg.split, strict=True):
        a, b, outside = _range(frames.times, start, end, "split", cfg.url)
        if outside:
            raise XarraySourceError(
                f"data.params.split: the {name} range [{start}, {end}] reaches outside the time "
                f"axis of {cfg.url} ({frames.times[0]} to {frames.times[-1]}); keep it inside"
            )
        out[name] = (a, b)
    ordered = sorted(out.items(), key=lambda kv: kv[1])
    for (n1, (_, b1)), (n2, (a2, _)) in itertools.pairwise(ordered):
        if a2 < b1:
            raise XarraySourceError(
                f"data.params.split: the {n1} and {n2} ranges overlap; ranges must not share a time"
            )
    return out


def split_starts(frames: Frames, cfg: XarrayConfig) -> dict[str, list[int]]:
    """First kept frame of every window of each split (``ordered``: one sequence, ``"all"``)."""
    if cfg.split == "ordered":
        n = len(frames.positions)
        return {"all": list(range(0, n - cfg.window + 1, cfg.stride))}
    out = {}
    for name, (a, b) in _split_edges(frames, cfg).items():
        if b - a < cfg.window:
            raise XarraySourceError(
                f"data.params.window: {cfg.window} frames are longer than the {name} split "
                f"({b - a} of {len(frames.positions)} frames); shorten the window or change "
                "data.params.split"
            )
        out[name] = list(range(a, b - cfg.window + 1, cfg.stride))
    return out


def tiles(height: int, width: int, cfg: XarrayConfig) -> list[tuple[int, int]]:
    """Top-left corners ``(row, column)`` of the ``patch`` × ``patch`` tiles of the (coarsened)
    grid, row-major; trailing rows and columns that do not fill a tile are left out."""
    if not cfg.patch:
        return [(0, 0)]
    if cfg.patch > min(height, width):
        raise XarraySourceError(
            f"data.params.patch: a patch of {cfg.patch} is larger than the grid "
            f"({height} × {width} after coarsen={cfg.coarsen}); lower patch, or 0 for the whole grid"
        )
    rows, cols = (
        range(0, height - cfg.patch + 1, cfg.patch),
        range(0, width - cfg.patch + 1, cfg.patch),
    )
    return [(r, c) for r in rows for c in cols]
