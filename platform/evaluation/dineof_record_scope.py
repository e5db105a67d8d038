"""DINEOF with ``scope: record``: one reconstruction of the whole record per tile, as DINEOF's
users run it, scored on its validation and test rows like every other method.

DINEOF (Beckers & Rixen 2003; Alvera-Azcárate et al. 2005) fills a time × space matrix from its
leading EOFs; on a window of a few frames it has a few frames to learn them from. Here, per tile
(sample ``i`` of a split is tile ``i % n_tiles`` of window ``i // n_tiles``; one tile without
``tiles`` in the store) and per channel, the matrix holds every frame of every training,
validation and test sample of that tile, in time order (train | val | test periods, windows in
order), each frame with its own mask: the record up to and including the test frames. Frames
shared by overlapping windows appear once per window, each with that window's mask. Columns are
the tile's domain points. The mode count is DINEOF's own cross-validation
(:func:`~incdyn.models.baselines.dineof.dineof_matrix`).

Two reconstructions, as the per-window baselines do per sample: the truth pass (val/test frames
with their full observed mask), scored against ``truth`` by
:class:`~incdyn.datasets.metrics.squared_error.SquaredError`; and the held-out pass (the val/test
held-out points removed from the input, training rows unchanged), scored at those points by
:class:`~incdyn.datasets.metrics.heldout.HeldoutError`. Observed points keep their values;
points outside the domain are NaN. The store is read chunk by chunk; what is held is the
matrix, ``frames × domain points`` per tile and channel (float64 while it is filled); under
Ray the matrices are filled in parallel, one task each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ray

from incdyn.datasets.metrics.heldout import HeldoutError
from incdyn.datasets.metrics.scoring import physics_context, score
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.store import normalization, open_split, store_attrs, store_domain
from incdyn.models.baselines.dineof import dineof_matrix

SPLITS = ("train", "val", "test")
SCORED = ("val", "test")


@dataclass
class _Tile:
    """One tile's matrix in the making: per sample, values ``(T, C, P)`` at the tile's domain
    points ``cols``, the observed mask and the held-out pass's input mask ``(T, P)``."""

    cols: np.ndarray
    values: list[np.ndarray] = field(default_factory=list)
    known: list[np.ndarray] = field(default_factory=list)
    known_held: list[np.ndarray] = field(default_factory=list)
    first_row: dict[str, int] = field(default_factory=dict)  # split -> its first row here
    filled: np.ndarray | None = None  # (rows, C, P) float32, the truth pass
    filled_held: np.ndarray | None = None  # the held-out pass


def n_tiles(url: str) -> int:
    """Tiles per window: the store's ``tiles`` attribute, 1 without it."""
    return max(len(store_attrs(url).get("tiles") or []), 1)


def _sizes(url: str, max_samples: int | None) -> dict[str, int]:
    """Samples per split used: all, the test split's first ``max_samples`` when given."""
    n = {s: open_split(url, s).sizes["sample"] for s in SPLITS}
    if max_samples is not None:
        n["test"] = min(n["test"], max_samples)
    return n


def _inside(domain: np.ndarray | None, tile: int, tiles: int, shape: tuple) -> np.ndarray:
    """bool ``(H, W)``: a tile's domain, from a ``(y, x)`` domain or a per-sample
    ``(sample, y, x)`` one (constant per tile: the union over the tile's samples)."""
    if domain is None:
        return np.ones(shape, bool)
    if domain.ndim == 2:
        return domain
    return domain[tile::tiles].any(axis=0)


def _tiles_of(url: str, tiles: int) -> list[_Tile]:
    """Each tile with its domain points (the union of the splits' domains for that tile)."""
    first = open_split(url, "train")
    shape = (first.sizes["y"], first.sizes["x"])
    inside = [np.zeros(shape, bool) for _ in range(tiles)]
    for split in SPLITS:
        domain = store_domain(open_split(url, split))
        for t in range(tiles):
            inside[t] |= _inside(domain, t, tiles, shape)
    return [_Tile(np.flatnonzero(i.ravel())) for i in inside]


def _chunks(url: str, split: str, n: int) -> list[tuple[int, int]]:
    chunk = open_split(url, split)["field"].encoding.get("chunks", (n,))[0] or n
    return [(a, min(a + chunk, n)) for a in range(0, n, chunk)]


def _read(url: str, split: str, n: int, tiles: list[_Tile]) -> None:
    """Append ``split``'s first ``n`` samples, chunk by chunk, to their tiles' rows."""
    t_len = open_split(url, split).sizes["time"]
    for tile in tiles:
        tile.first_row[split] = sum(v.shape[0] for v in tile.values)
    for a, b in _chunks(url, split, n):
        ds = open_split(url, split).isel(sample=slice(a, b))
        values = ds["field"].values.astype(np.float32)
        mask = ds["mask"].values.astype(bool)
        holdout = ds["holdout"].values.astype(bool) if "holdout" in ds else np.zeros_like(mask)
        shape = values.shape
        flat = values.reshape(shape[0], shape[1], shape[2], -1)
        for i, s in enumerate(range(a, b)):
            tile = tiles[s % len(tiles)]
            m = mask[i].reshape(t_len, -1)[:, tile.cols]
            tile.values.append(flat[i][:, :, tile.cols])
            tile.known.append(m)
            tile.known_held.append(m & ~holdout[i].reshape(t_len, -1)[:, tile.cols])


def _fill(x: np.ndarray, seed: list[int], options: dict) -> np.ndarray:
    """DINEOF of one ``(frames, points)`` matrix (NaN at gaps), its cross-validation points
    drawn from ``seed``; zeros when nothing is observed, as the per-window baseline gives a
    sample without observations."""
    if not np.isfinite(x).any():
        return np.zeros_like(x)
    return dineof_matrix(x, rng=np.random.default_rng(seed), **options).filled


_fill_task = ray.remote(num_cpus=1)(_fill)


def _fill_all(jobs: list[tuple[np.ndarray, list[int]]], options: dict) -> list[np.ndarray]:
    """Every matrix filled: one Ray task each under Ray (the matrices are independent and
    seeded on their own, so the result is the same in any order), else one after another."""
    if ray.is_initialized() and len(jobs) > 1:
        return ray.get([_fill_task.remote(x, seed, options) for x, seed in jobs])
    return [_fill(x, seed, options) for x, seed in jobs]


def _options(max_modes: int | None, tol: float | None) -> dict:
    """:func:`dineof_matrix`'s keywords: ``tol`` ends the mode search's reconstructions too."""
    out: dict = {} if max_modes is None else {"max_modes": max_modes}
    return out if tol is None else {**out, "tol": tol, "cv_tol": tol}


def _reconstruct(tiles: list[_Tile], held_pass: bool, options: dict) -> None:
    """Fill every tile's matrix per channel: the truth pass, and the held-out pass when asked
    (tile ``i``'s channel ``c`` drawing its cross-validation points from seed ``[i, c]`` in
    both passes)."""
    jobs, slots = [], []
    for index, tile in enumerate(tiles):
        values = np.concatenate(tile.values)  # (rows, C, P)
        passes = [("filled", np.concatenate(tile.known))]
        if held_pass:
            passes.append(("filled_held", np.concatenate(tile.known_held)))
        for name, kn in passes:
            setattr(tile, name, np.empty(values.shape, np.float32))
            for c in range(values.shape[1]):
                jobs.append((np.where(kn, values[:, c], np.nan).astype(np.float64), [index, c]))
                slots.append((tile, name, c))
        tile.values, tile.known, tile.known_held = [], [], []  # now held by the jobs
    for (tile, name, c), out in zip(slots, _fill_all(jobs, options), strict=True):
        getattr(tile, name)[:, c] = out


def _imputed(tiles: list[_Tile], split: str, a: int, b: int, shape: tuple, name: str):
    """``(b - a, T, C, H, W)`` samples ``a:b`` of ``split`` from the tiles' rows (``name``:
    ``filled`` or ``filled_held``); NaN away from the tile's domain points."""
    n, t_len, channels, h, w = shape
    out = np.full((n, t_len, channels, h * w), np.nan, np.float32)
    for i, s in enumerate(range(a, b)):
        tile = tiles[s % len(tiles)]
        row = tile.first_row[split] + (s // len(tiles)) * t_len
        out[i][:, :, tile.cols] = getattr(tile, name)[row : row + t_len]
    return out.reshape(shape)


def _score(url: str, split: str, n: int, tiles: list[_Tile], source: str) -> tuple[dict, tuple]:
    """``split``'s metrics (``test_*`` names, as every method's) and its first sample."""
    data = open_split(url, split)
    physics = physics_context(data, source)
    channels = tuple(str(c) for c in data["channel"].values)
    _, std = normalization(url)
    acc, held = SquaredError(channels), HeldoutError(channels)
    has_truth, has_held = "truth" in data, "holdout" in data
    example: tuple = ()
    for a, b in _chunks(url, split, n):
        ds = data.isel(sample=slice(a, b))
        values, mask = ds["field"].values.astype(np.float32), ds["mask"].values.astype(bool)
        imputed = _imputed(tiles, split, a, b, values.shape, "filled")
        reference = ds["truth"].values if has_truth else values
        if has_truth:
            acc.update(imputed, reference, mask, std, store_domain(ds))
            acc.add(score(imputed, reference, np.arange(a, b), physics))
        if has_held:
            imputed_held = _imputed(tiles, split, a, b, values.shape, "filled_held")
            held.update(imputed_held, values, ds["holdout"].values.astype(bool), std)
        if not example:
            example = (reference[0], mask[0], imputed[0])
    metrics = {**(acc.result() if has_truth else {}), **(held.result() if has_held else {})}
    return metrics, example


def dineof_record_splits(
    url: str,
    *,
    max_samples: int | None,
    source: str,
    max_modes: int | None = None,
    tol: float | None = None,
) -> dict[str, tuple[dict[str, float], tuple]]:
    """DINEOF on the record of each tile; per scored split (``val``, ``test``) its metrics
    (``test_*`` names, as :class:`SquaredError` and :class:`HeldoutError` give them) and its
    first sample ``(reference, mask, imputed)``. ``max_samples`` limits the test samples (those
    after them are left out of the record too); ``max_modes`` and ``tol`` bound each DINEOF
    (the most modes tried; the relative change that ends a reconstruction)."""
    options = _options(max_modes, tol)
    sizes = _sizes(url, max_samples)
    tiles = _tiles_of(url, n_tiles(url))
    for split in SPLITS:
        _read(url, split, sizes[split], tiles)
    held_pass = any("holdout" in open_split(url, s) for s in SCORED)
    _reconstruct(tiles, held_pass, options)
    return {s: _score(url, s, sizes[s], tiles, source) for s in SCORED}


_record_task = ray.remote(num_cpus=1)(dineof_record_splits)


def run_dineof_record(
    url: str,
    *,
    max_samples: int | None,
    source: str,
    max_modes: int | None = None,
    tol: float | None = None,
) -> dict[str, tuple[dict[str, float], tuple]]:
    """:func:`dineof_record_splits` as one Ray task (it needs every split), in this process for
    an in-memory store or without Ray."""
    kw = {"max_samples": max_samples, "source": source, "max_modes": max_modes, "tol": tol}
    if url.startswith("memory://") or not ray.is_initialized():
        return dineof_record_splits(url, **kw)
    return ray.get(_record_task.remote(url, **kw))
