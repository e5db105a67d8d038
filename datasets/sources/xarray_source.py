"""Any gridded data set xarray can open (zarr or netCDF; local, ``memory://``, ``gs://``), cut
into windows of ``window`` frames every ``stride`` frames, with splits contiguous in time.

The file's dimensions play the roles ``dims: {time: NAME, y: NAME, x: NAME}`` (or the list
``[time, y, x]``; any names, any order in the file: every variable is transposed by name);
``variables`` are the channels (``name@LEVEL`` picks one level). Gaps are NaN (CF
``_FillValue``/``missing_value`` are decoded to NaN by xarray). Points outside the **domain**
(by default: missing at every time in any variable, e.g. land under a sea-surface field; or a
mask variable: ``domain: {variable: lsm}``) are never observed, never imputed, never scored.
Two uses:

- ``gaps: benchmark`` — the file is complete inside the domain; the spec's observation family
  is drawn on top and val/test keep the truth, as for the simulators;
- ``gaps: real`` — the file's own NaN are the observation mask; val/test hold no truth (score
  on held-out observed points, ``evaluation.holdout``).

``split`` cuts the time axis into train | val | test periods, by fractions or by time ranges
(``{train: ["1963", "1992"], ...}``: partial dates cover their whole year, month, ...); a
split's windows lie inside its period, so no frame is shared between splits. ``patch`` cuts a
large grid into ``patch`` × ``patch`` tiles: ``tiles: inside`` (the default) keeps only tiles
wholly inside the domain, and the store has one domain ``(y, x)`` for all samples;
``tiles: coastal`` also keeps tiles partly outside it (at least ``min_inside`` of their points
inside, e.g. the coastal tiles of a global ocean), and then each sample has its own domain, the
land-sea mask of its tile (``domain (sample, y, x)`` in the store). Sample ``i`` of a split is
its window ``i // tiles``, tile ``i % tiles``. On a datetime axis ``time`` is hours since each window's first frame and
the per-sample ``window_start`` its date. Reads are lazy: a sample reads only its frames and
tile, and the domain is a reduction over time in bounded blocks, so a file larger than memory
is never loaded whole. ERA5 is one configuration of this source (:mod:`.era5`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
import xarray as xr

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.sources.gridded.config import XarrayConfig, XarraySourceError
from incdyn.datasets.sources.gridded.domain import domain_mask
from incdyn.datasets.sources.gridded.grid import Grid, grid_of
from incdyn.datasets.sources.gridded.opening import open_source, resolve_url, variable
from incdyn.datasets.sources.gridded.windows import Frames, frames_of, split_starts, tiles

__all__ = ["XarrayConfig", "XarraySourceError", "open_source", "resolve_url"]

PRESETS = {"default": XarrayConfig()}
CHANNELS: tuple[str, ...] = ()  # the config's variables
EPOCH = pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class Source:
    """A checked file and where its samples lie (everything decided before any read).

    ``per_sample``: the kept tiles' domains differ (coastal tiles), so each sample has its own.
    """

    ds: xr.Dataset
    frames: Frames
    grid: Grid
    domain: np.ndarray
    starts: dict[str, list[int]]
    tiles: list[tuple[int, int]]
    per_sample: bool = False


@lru_cache(maxsize=4)
def source_of(cfg: XarrayConfig) -> Source:
    """Open and check ``cfg``'s file: names, time axis, splits, tiles and domain."""
    ds = open_source(cfg)
    frames = frames_of(ds, cfg)
    grid = grid_of(ds, cfg)
    corners = tiles(*grid.shape, cfg)  # a patch larger than the grid fails before the domain
    starts = split_starts(frames, cfg)
    domain = domain_mask(ds, cfg, grid, frames)
    if not cfg.patch:
        return Source(ds, frames, grid, domain, starts, corners)
    corners = kept_tiles(domain, corners, cfg)
    first = tile_domain(domain, corners[0], cfg.patch)
    per_sample = any(
        not np.array_equal(tile_domain(domain, t, cfg.patch), first) for t in corners[1:]
    )
    return Source(ds, frames, grid, domain, starts, corners, per_sample)


def tile_domain(domain: np.ndarray, corner: tuple[int, int], patch: int) -> np.ndarray:
    """bool ``(patch, patch)``: the domain of the tile at ``corner``."""
    r, c = corner
    return domain[r : r + patch, c : c + patch]


def kept_tiles(
    domain: np.ndarray, corners: list[tuple[int, int]], cfg: XarrayConfig
) -> list[tuple[int, int]]:
    """The tiles that are samples: wholly inside the domain (``tiles: inside``), or with at
    least ``min_inside`` of their points inside it (``tiles: coastal``)."""
    p = cfg.patch
    shares = [float(tile_domain(domain, t, p).mean()) for t in corners]
    if cfg.tiles == "coastal":
        kept = [t for t, s in zip(corners, shares, strict=True) if s > 0 and s >= cfg.min_inside]
        need = f"at least {cfg.min_inside:g} of it inside the domain; lower min_inside or patch"
    else:
        kept = [t for t, s in zip(corners, shares, strict=True) if s == 1.0]
        need = "wholly inside the domain; lower patch, or tiles: coastal"
    if not kept:
        raise XarraySourceError(f"data.params.patch: no {p} × {p} tile of {cfg.url} lies {need}")
    return kept


def domain_of(cfg: XarrayConfig) -> np.ndarray:
    """bool ``(H, W)`` of the whole (coarsened) grid: True inside the domain."""
    return source_of(cfg).domain


def split_windows(cfg: XarrayConfig) -> dict[str, list[int]]:
    """First kept frame of every window of each split (``ordered``: one sequence, ``all``)."""
    return source_of(cfg).starts


def n_samples(cfg: XarrayConfig, split: str = "all") -> int:
    """Samples of ``split``: its windows times the tiles of the grid."""
    src = source_of(cfg)
    return len(src.starts[split]) * len(src.tiles)


def read_samples(cfg: XarrayConfig, split: str, start: int, n: int) -> Simulation:
    """Samples ``start : start + n`` of ``split`` (``all`` for ``split: ordered``):
    ``fields (n, window, C, H, W)``, NaN outside the domain and at the file's gaps."""
    src = source_of(cfg)
    available = n_samples(cfg, split)
    if start < 0 or n < 1 or start + n > available:
        where = "in its period" if split == "all" else f"in the {split} split"
        raise XarraySourceError(
            f"data.n_{split}: {cfg.url} holds {available} windows of {cfg.window} frames "
            f"(stride {cfg.stride}, {len(src.tiles)} tiles each) {where}; samples {start}.."
            f"{start + n - 1} were asked for (lower the split sizes, or the stride)"
        )
    items = [divmod(i, len(src.tiles)) for i in range(start, start + n)]
    firsts = [src.starts[split][w] for w, _ in items]
    arrays = [variable(src.ds, cfg, v) for v in cfg.variables]
    fields = np.stack(
        [
            np.stack(
                [
                    src.grid.read(a, cfg, src.frames.span(s, cfg.window), src.tiles[t])
                    for a in arrays
                ],
                axis=1,
            )
            for s, (_, t) in zip(firsts, items, strict=True)
        ]
    )  # (n, T, C, H, W); one window and tile at a time: memory stays the samples asked for
    return _simulation(cfg, src, fields, firsts, [src.tiles[t] for _, t in items])


def _simulation(cfg, src: Source, fields, firsts, corners) -> Simulation:
    p = cfg.patch
    r, c = corners[0]
    if p:  # each sample's own tile domain, (n, H, W)
        domains = np.stack([tile_domain(src.domain, t, p) for t in corners])
    else:
        domains = np.broadcast_to(src.domain, (len(corners), *src.domain.shape))
    y, x = (src.grid.y[r : r + p], src.grid.x[c : c + p]) if p else (src.grid.y, src.grid.x)
    fields[~np.broadcast_to(domains[:, None, None], fields.shape)] = np.nan
    observed = np.isfinite(fields).all(axis=2)
    if (
        cfg.gaps == "benchmark"
        and not observed[np.broadcast_to(domains[:, None], observed.shape)].all()
    ):
        raise XarraySourceError(
            f"data.params.gaps: {cfg.url} has gaps (NaN) inside its domain; use gaps: real, or "
            "a complete file for a benchmark"
        )
    if src.per_sample:
        domain = np.ascontiguousarray(domains)
    else:
        domain = None if domains[0].all() else domains[0].copy()
    names = zip(cfg.channels, cfg.variables, strict=True)
    units = {c: str(src.ds[v.partition("@")[0]].attrs.get("units", "")) for c, v in names}
    units.update(src.grid.units)
    time, params, attrs = np.arange(cfg.window, dtype=np.float64), {}, {}
    if src.frames.is_datetime:
        step = src.frames.interval_hours()
        time = time * step
        starts = (src.frames.times[firsts] - EPOCH) / pd.Timedelta(hours=1)
        params["window_start"] = torch.tensor(np.asarray(starts, np.float64))
        units.update(time="h", window_start="hours since 1970-01-01 00:00:00")
        attrs.update(frame_interval_hours=step, window_hours=(cfg.window - 1) * step)
    if p:
        attrs["tiles"] = [list(map(int, t)) for t in src.tiles]
    return Simulation(
        fields=torch.from_numpy(np.ascontiguousarray(fields)),
        params=params,
        channels=cfg.channels,
        time=time,
        y=np.asarray(y, np.float64),
        x=np.asarray(x, np.float64),
        units=units,
        attrs={"source_url": cfg.url, "dims": list(cfg.dims), "gaps": cfg.gaps, **attrs},
        masks=torch.from_numpy(observed) if cfg.gaps == "real" else None,
        domain=domain,
    )


def generate(
    cfg: XarrayConfig, n: int, generator: torch.Generator, *, split: str, start: int
) -> Simulation:
    """Samples ``start : start + n`` of ``split`` (``generator`` is unused: the data are fixed)."""
    del generator
    if cfg.split == "ordered":
        raise XarraySourceError(
            "data.params.split: 'ordered' is for sources read by offset (era5); give fractions "
            "or time ranges"
        )
    return read_samples(cfg, split, start, n)
