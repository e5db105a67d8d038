"""The window a suggestion is made for: read from a record (any file the xarray source reads,
with the model's own data settings) or from a split of an incdyn store.

A record's window is the model's number of frames ending at the frame nearest ``--time``; its
own gaps (NaN, CF ``_FillValue``) are the unobserved points and its domain is the model's
(points missing at every time, or the mask variable). A grid larger than the model's tile is
read at ``corner``. A store's window is one sample of a split, its mask the store's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from incdyn.datasets.generators import make_config
from incdyn.datasets.sources.xarray_source import source_of, variable
from incdyn.datasets.store import open_split
from incdyn.platform.spec import ExperimentSpec


@dataclass(frozen=True)
class Window:
    """One window in physical units.

    Attributes:
        values: float32 ``(T, C, H, W)``, NaN where unobserved.
        mask: bool ``(T, H, W)``: observed (inside the domain).
        domain: bool ``(H, W)``.
        frame: the frame the suggestion is for.
        y, x: coordinates of the rows and columns; ``y_name``, ``x_name`` their names.
        time: the label of ``frame``.
    """

    values: np.ndarray
    mask: np.ndarray
    domain: np.ndarray
    frame: int
    y: np.ndarray
    x: np.ndarray
    y_name: str
    x_name: str
    time: str


def _nearest(times: pd.Index, label: str) -> int:
    """The position of the frame nearest ``label`` (a date on a datetime axis, else a number)."""
    try:
        value = pd.Timestamp(label) if isinstance(times, pd.DatetimeIndex) else float(label)
    except ValueError:
        raise ValueError(f"--time: {label!r} is not a time of the record's axis") from None
    if not times[0] <= value <= times[-1]:
        raise ValueError(f"--time: {label} lies outside the record ({times[0]} … {times[-1]})")
    gap = times - value
    gap = gap / pd.Timedelta(seconds=1) if isinstance(gap, pd.TimedeltaIndex) else gap
    return int(np.abs(np.asarray(gap, dtype=np.float64)).argmin())


def record_window(
    spec: ExperimentSpec, frames: int, url: str, time: str, corner: tuple[int, int] = (0, 0)
) -> Window:
    """The window of ``frames`` frames ending at the frame nearest ``time`` in the record ``url``,
    read with the model's data settings (its source must be ``xarray``)."""
    if spec.data.source != "xarray":
        raise ValueError(
            f"--input: the model was trained on {spec.data.source!r} data, not on records of the "
            "xarray source; pass an incdyn store with --sample instead"
        )
    cfg = make_config("xarray", spec.data.preset, {**dict(spec.data.params), "url": url})
    src = source_of(cfg)
    last = _nearest(src.frames.times, time)
    first = last - frames + 1
    if first < 0:
        raise ValueError(
            f"--time: {time} is frame {last} of the record; the model's window needs "
            f"{frames} frames up to it (choose a later time)"
        )
    size = cfg.patch or 0
    h, w = src.grid.shape
    r, c = corner
    if size and not (0 <= r <= h - size and 0 <= c <= w - size):
        raise ValueError(
            f"--corner: a {size} × {size} tile at {corner} does not fit the {h} × {w} grid"
        )
    span = src.frames.span(first, frames)
    values = np.stack([src.grid.read(variable(src.ds, cfg, v), cfg, span, corner)
                       for v in cfg.variables], axis=1)  # fmt: skip
    rows = slice(r, r + size) if size else slice(None)
    cols = slice(c, c + size) if size else slice(None)
    domain = src.domain[rows, cols]
    values[:, :, ~domain] = np.nan
    return Window(
        values=values,
        mask=np.isfinite(values).all(axis=1) & domain[None],
        domain=domain,
        frame=frames - 1,
        y=np.asarray(src.grid.y[rows]),
        x=np.asarray(src.grid.x[cols]),
        y_name=cfg.dims[1],
        x_name=cfg.dims[2],
        time=str(src.frames.times[last]),
    )


def store_window(url: str, split: str, sample: int, frame: int | None) -> Window:
    """Sample ``sample`` of ``split`` of an incdyn store (its held-out points stay observed)."""
    ds = open_split(url, split, dask=False)
    if not 0 <= sample < ds.sizes["sample"]:
        raise ValueError(f"--sample: {split} holds samples 0 … {ds.sizes['sample'] - 1}")
    values = ds["field"][sample].values.astype(np.float32)  # (T, C, H, W)
    mask = ds["mask"][sample].values.astype(bool)
    domain = ds["domain"].values.astype(bool) if "domain" in ds else np.ones(mask.shape[1:], bool)
    domain = domain[sample] if domain.ndim == 3 else domain  # each sample's own (coastal tiles)
    t = values.shape[0]
    frame = t - 1 if frame is None else frame
    return Window(
        values=values,
        mask=mask,
        domain=domain,
        frame=frame,
        y=np.asarray(ds["y"].values),
        x=np.asarray(ds["x"].values),
        y_name="y",
        x_name="x",
        time=f"{split} sample {sample}, frame {frame}",
    )
