"""Filling one output time block: the windows that overlap it (every tile of each), through the
filler in one call, blended with the layout's taper and written into the block's region.

Observed points keep the input's values exactly; points outside the domain are NaN; every
point inside is filled. Each (window, tile) piece draws from a generator seeded by the job's
seed, the window's first frame and the tile, so a block gives the same values whichever run,
actor or neighbouring block computes it: a rerun after a kill equals an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from incdyn.datasets.gap_transplant import donor_frame, transplanted_holdout
from incdyn.platform.impute.fillers import Filler
from incdyn.platform.impute.job import ImputeJob
from incdyn.platform.impute.layout import taper
from incdyn.platform.impute.output import FLAG, write_block
from incdyn.platform.impute.record import Record


@dataclass
class BlockResult:
    """What a block reports: counts, and sums of the held-out scores per variable."""

    block: int
    frames: int
    filled: int
    observed: int
    inside: int
    empty_frames: int
    held: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sq_error: np.ndarray = field(default_factory=lambda: np.zeros(0))
    covered: np.ndarray = field(default_factory=lambda: np.zeros(0))


def piece_seed(seed: int, start: int, tile: int) -> int:
    return int(np.random.SeedSequence([seed, start, tile]).generate_state(1)[0])


def observed_mask(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """bool ``(T, H, W)``: every variable present, inside the domain."""
    return np.isfinite(values).all(axis=1) & inside


def observations(
    job: ImputeJob, record: Record, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames ``[lo, hi)``: values ``(F, C, H, W)``, observed and held-out points ``(F, H, W)``
    (held-out: in the shape of other frames' gaps, the same whoever reads the frame)."""
    values = record.read(lo, hi - lo)
    inside = job.inside
    observed = observed_mask(values, inside)
    held = np.zeros_like(observed)
    if job.holdout > 0:
        frames = np.arange(lo, hi)
        n = job.layout.frames
        donors = [donor_frame(int(t), n, job.holdout_seed) for t in frames]
        donor_obs = np.concatenate([observed_mask(record.read(d, 1), inside) for d in donors])
        held = transplanted_holdout(
            observed, frames, donor_obs, inside, job.holdout, job.holdout_seed
        )
    return values, observed, held


def fill_block(job: ImputeJob, record: Record, filler: Filler, b: int) -> BlockResult:
    """Fill block ``b`` and write it; returns its counts and held-out sums."""
    lay = job.layout
    a, e = lay.block_frames(b)
    wins = lay.windows_of_block(b)
    lo, hi = min(wins), max(wins) + lay.window
    values, observed, held = observations(job, record, lo, hi)
    mean, spread = blend(job, filler, values, observed & ~held, wins, lo, a, e)
    part = slice(a - lo, e - lo)
    return write_estimate(
        job, record, filler, b, values[part], observed[part], held[part], mean, spread
    )


def blend(
    job: ImputeJob,
    filler: Filler,
    values: np.ndarray,
    given: np.ndarray,
    wins: list[int],
    lo: int,
    a: int,
    e: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The estimate of frames ``[a, e)``: every window of ``wins`` (each tile of it) through
    the filler in one call, then the taper-weighted mean of the pieces that cover each point.
    ``values``/``given`` hold frames ``[lo, lo + len)``. Returns ``(mean, spread)``
    ``(e - a, C, H, W)`` (spread None for a method without one)."""
    lay = job.layout
    (th, tw), (ph, pw) = lay.tile, lay.pad
    corners = lay.tile_corners
    n_c = values.shape[1]
    pieces_v, pieces_m, seeds, where = [], [], [], []
    for s in wins:
        for ti, (r, c) in enumerate(corners):
            v = np.full((lay.window, n_c, ph, pw), np.nan, np.float32)
            m = np.zeros((lay.window, ph, pw), bool)
            v[:, :, :th, :tw] = values[s - lo : s - lo + lay.window, :, r : r + th, c : c + tw]
            m[:, :th, :tw] = given[s - lo : s - lo + lay.window, r : r + th, c : c + tw]
            pieces_v.append(np.where(m[:, None], v, np.float32(0.0)))
            pieces_m.append(m)
            seeds.append(piece_seed(job.seed, s, ti))
            where.append((s, r, c))
    est, spr = filler.fill(np.stack(pieces_v), np.stack(pieces_m), seeds)
    h, w = lay.grid
    num = np.zeros((e - a, n_c, h, w))
    num_s = np.zeros((e - a, n_c, h, w))
    den = np.zeros((e - a, 1, h, w))
    wt = taper(lay.window)
    ws = lay.tile_weight()
    for i, (s, r, c) in enumerate(where):
        f0, f1 = max(s, a), min(s + lay.window, e)
        weight = wt[f0 - s : f1 - s, None, None, None] * ws[None, None]
        num[f0 - a : f1 - a, :, r : r + th, c : c + tw] += (
            weight * est[i, f0 - s : f1 - s, :, :th, :tw]
        )
        if spr is not None:
            num_s[f0 - a : f1 - a, :, r : r + th, c : c + tw] += (
                weight * spr[i, f0 - s : f1 - s, :, :th, :tw]
            )
        den[f0 - a : f1 - a, :, r : r + th, c : c + tw] += weight
    return num / den, (num_s / den if spr is not None else None)


def write_estimate(
    job: ImputeJob,
    record: Record,
    filler: Filler | None,
    b: int,
    values: np.ndarray,
    observed: np.ndarray,
    held: np.ndarray,
    mean: np.ndarray,
    spread: np.ndarray | None,
) -> BlockResult:
    """Write block ``b`` from its estimate ``mean``/``spread`` ``(F, C, H, W)`` and its input:
    observed points as given, NaN outside the domain, intervals at the job's level."""
    a, e = job.layout.block_frames(b)
    inside = job.inside
    n_c = values.shape[1]
    present = np.isfinite(values) & inside & ~held[:, None]  # per variable: kept as given
    empty = ~(observed & ~held).reshape(e - a, -1).any(axis=1)
    with_spread = spread is not None and filler is not None
    q = filler.inflation(job.level) if with_spread else np.full(n_c, np.nan)
    scale = filler.spread_scale() if with_spread else np.full(n_c, np.nan)
    t_dim = job.time_dim
    arrays: dict[str, xr.Variable] = {}
    sq, cov, n_held = np.zeros(n_c), np.zeros(n_c), np.zeros(n_c)
    for ci, name in enumerate(record.names):
        dtype = np.promote_types(values.dtype, np.float32)
        out = np.where(present[:, ci], values[:, ci], mean[:, ci]).astype(dtype)
        out[:, ~inside] = np.nan
        if spread is None:
            sp = np.full(out.shape, np.nan)
            lower = upper = np.where(present[:, ci], out, np.nan)
        else:
            raw = np.where(present[:, ci], 0.0, spread[:, ci])
            sp = raw * scale[ci]
            lower, upper = out - q[ci] * raw, out + q[ci] * raw
        for arr in (sp, lower, upper):
            arr[:, ~inside] = np.nan
        truth = values[:, ci][held]
        fill = out[held]
        ok = np.isfinite(truth)
        n_held[ci] = ok.sum()
        sq[ci] = float(((fill[ok] - truth[ok]) ** 2).sum())
        if spread is not None:
            cov[ci] = float(((lower[held][ok] <= truth[ok]) & (truth[ok] <= upper[held][ok])).sum())
        else:
            cov[ci] = np.nan
        dims = record.var_dims[record.cfg.variables[ci]]
        order = [("t", "y", "x")[record.cfg.dims.index(d)] for d in dims]
        for suffix, arr in (("", out), ("_spread", sp), ("_lower", lower), ("_upper", upper)):
            arrays[f"{name}{suffix}"] = xr.Variable(dims, _to_order(arr.astype(dtype), order))
    flag = np.where(observed, 1, 0).astype(np.int8)
    flag[held] = 2
    flag[empty] = np.where(flag[empty] == 0, 4, flag[empty])
    flag[:, ~inside] = 3
    fdims = record.var_dims[record.cfg.variables[0]]
    forder = [("t", "y", "x")[record.cfg.dims.index(d)] for d in fdims]
    arrays[FLAG] = xr.Variable(fdims, _to_order(flag, forder))
    write_block(job.store, t_dim, a, arrays, b)
    n_inside = int(inside.sum()) * (e - a)
    n_obs = int((observed & inside).sum())
    return BlockResult(
        block=b,
        frames=e - a,
        filled=n_inside - n_obs,
        observed=n_obs,
        inside=n_inside,
        empty_frames=int(empty.sum()),
        held=n_held,
        sq_error=sq,
        covered=cov,
    )


def _to_order(arr: np.ndarray, order: list[str]) -> np.ndarray:
    """``(t, y, x)`` → the file's order of the roles."""
    return np.ascontiguousarray(arr.transpose([("t", "y", "x").index(o) for o in order]))
