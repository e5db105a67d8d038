"""Principle-1 exposure audit (Theorem 1, Sec. 3.2): how often each dimension outside the
context is queried, given the context.

Theorem 1: the trained denoiser learns ``E[x_i | ctx]`` only where ``P(i ∈ M_qry | M_ctx) > 0``;
its output elsewhere never gets a gradient. For an observation family ``p(M)`` and a partition
strategy this module estimates the exposure ``e_i(ctx) = P(i ∈ M_qry | M_ctx = ctx)`` of every
grid point ``i ∉ ctx`` over contexts ``ctx`` drawn as in training, and reports per point its
minimum and mean over those contexts.

- Block families (``exact``): for each sampled context, enumerate every ``k``-tile mask ``M``,
  weight it by ``p(M) · P(ctx | M)`` (zero when the partition cannot produce ``ctx`` from ``M``)
  and average the query probability of every point under these weights.
- Otherwise (``mc``): sample ``(M, ctx, qry)`` jointly and estimate ``P(i ∈ qry | i ∉ ctx, φ)``
  by counting, within groups of contexts of equal signature ``φ`` (the tiles the context
  touches when the family or the partition is tiled; nothing for pixel partitions of pixel
  masks). For the families here the exposure depends on the context only through ``φ``, so the
  groups give the exact per-context exposure: with i.i.d. pixel masks and a pixel partition,
  every ``i ∉ ctx`` has ``e_i = r_qry · p(1 − r_ctx) / (1 − p·r_ctx)`` (:func:`pixel_exposure`),
  positive iff ``r_ctx < 1`` (MissDiff, ``r_ctx = 1``, queries nothing outside its context).

A mask family and a partition are audited on one frame: static masks and partitions repeat one
spatial draw over the frames, and per-frame ones draw every frame independently alike.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from incdyn.datasets.masks import MaskFamily, block_index, sample_masks
from incdyn.models.partition import Partition

ZERO = 1e-12  # exposures at or below this count as zero
MAX_MASKS = 200_000  # largest number of block masks the exact audit enumerates
MIN_HITS = 20.0  # MC: expected queries (at the overall exposure) before an estimate counts
MAX_SAMPLES = 100_000  # MC: most joint draws


@dataclass(frozen=True)
class ExposureReport:
    """Exposure of every grid point outside the context (Theorem 1).

    Attributes:
        family: the audited observation-mask family.
        partition: the audited partition strategy.
        method: ``"exact"`` (enumeration of block masks) or ``"mc"`` (grouped sampling).
        samples: contexts (exact) or joint draws (mc) the report rests on.
        min_map: ``(H, W)`` minimum over contexts with ``i ∉ ctx`` of ``P(i ∈ qry | ctx)``
            (NaN where a point was never outside a sampled context).
        mean_map: ``(H, W)`` mean of ``P(i ∈ qry | ctx)`` over contexts with ``i ∉ ctx``,
            i.e. ``P(i ∈ qry | i ∉ ctx)``.
        zero_rate_map: ``(H, W)`` fraction of the contexts with ``i ∉ ctx`` that give ``i``
            zero exposure.
        zero_mass: fraction of the (context, point outside it) pairs with zero exposure.
        noise_cv: mc: the coefficient of variation of the mean map that sampling noise alone
            gives (compare with :attr:`variation`); 0 for exact reports.
        coverage: mc: fraction of the outside-context draws in context groups sampled densely
            enough to enter ``min_map`` and the zero flags; 1 for exact reports.
    """

    family: MaskFamily
    partition: Partition
    method: Literal["exact", "mc"]
    samples: int
    min_map: torch.Tensor
    mean_map: torch.Tensor
    zero_rate_map: torch.Tensor
    zero_mass: float
    noise_cv: float = 0.0
    coverage: float = 1.0

    @property
    def minimum(self) -> float:
        """The smallest exposure of any point under any sampled context."""
        return float(np.nanmin(self.min_map.numpy()))

    @property
    def zero_map(self) -> torch.Tensor:
        """Bool ``(H, W)``: points that some context leaves with zero exposure."""
        return self.min_map <= ZERO

    @property
    def zero_fraction(self) -> float:
        """Fraction of points that some context leaves with zero exposure."""
        return float(self.zero_map.double().mean())

    @property
    def has_zero_exposure(self) -> bool:
        return bool(self.zero_map.any())

    @property
    def spread(self) -> float:
        """``max / min`` of the mean exposure map (1 is uniform; inf when a mean is zero)."""
        values = self.mean_map[~self.mean_map.isnan()]
        low = float(values.min())
        return math.inf if low <= ZERO else float(values.max()) / low

    @property
    def variation(self) -> float:
        """Coefficient of variation ``std / mean`` of the mean exposure map."""
        values = self.mean_map[~self.mean_map.isnan()].double()
        return float(values.std(unbiased=False) / values.mean())


def pixel_exposure(p: float, context_ratio: float, query_ratio: float) -> float:
    """Closed-form ``P(i ∈ qry | ctx)`` for ``i ∉ ctx`` under i.i.d. pixel masks of density
    ``p`` and a pixel partition: ``r_q · P(i ∈ M | i ∉ ctx) = r_q · p(1 − r_c) / (1 − p·r_c)``
    (ignores the one-observed-point guarantee of the sampler, negligible on real grids)."""
    return query_ratio * p * (1.0 - context_ratio) / (1.0 - p * context_ratio)


def _draw(
    family: MaskFamily,
    partition: Partition,
    samples: int,
    frames: int,
    h: int,
    w: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``samples`` single-frame draws of ``(M, ctx, qry)``, each bool ``(samples, H·W)``."""
    if family.static:
        masks = sample_masks(family, samples, 1, h, w, generator)
    else:  # frames are independent alike: use every drawn frame as one sample
        n = -(-samples // frames)
        masks = sample_masks(family, n, frames, h, w, generator)
        masks = masks.reshape(n * frames, 1, h, w)[:samples]
    ctx, qry = partition.split(masks, generator)
    return masks.flatten(1), ctx.flatten(1), qry.flatten(1)


def _block_masks(family: MaskFamily, h: int, w: int) -> torch.Tensor:
    """Every mask of a block family, bool ``(n_masks, H·W)`` (all equally likely)."""
    nb = family.blocks**2
    if math.comb(nb, family.k) > MAX_MASKS:
        raise ValueError(f"{math.comb(nb, family.k)} block masks are too many to enumerate")
    chosen = torch.zeros(math.comb(nb, family.k), nb, dtype=torch.bool)
    for row, tiles in enumerate(itertools.combinations(range(nb), family.k)):
        chosen[row, list(tiles)] = True
    return chosen[:, block_index(h, w, family.blocks).flatten()]


def _exact_exposure(
    ctx: torch.Tensor, masks: torch.Tensor, partition: Partition, h: int, w: int
) -> torch.Tensor:
    """``P(i ∈ qry | ctx)`` for contexts ``(n, H·W)`` and equally likely masks ``(m, H·W)``,
    float64 ``(n, H·W)``, by weighting every mask with ``P(ctx | M)``."""
    c, m = ctx.double(), masks.double()
    outside = c @ (1.0 - m).T  # (n, m): context points the mask does not observe
    n_ctx, n_mask = c.sum(1, keepdim=True), m.sum(1)[None, :]
    if partition.kind == "pixel":
        r = partition.context_ratio
        ok = outside == 0
        if r >= 1.0:
            ok &= n_mask == n_ctx
            logw = torch.zeros_like(outside)
        else:  # r^|ctx| (1 − r)^(|M| − |ctx|); the first factor is common to all masks
            logw = (n_mask - n_ctx) * math.log1p(-r)
        logw = torch.where(ok, logw, -math.inf)
        return partition.query_ratio * (torch.softmax(logw, dim=1) @ m)
    # Block partition: kept tiles are those the context touches; the mask must agree with the
    # context on them, and the other observed tiles are exactly the n_drop dropped ones.
    pidx = block_index(h, w, partition.blocks).flatten()
    nb = partition.blocks**2
    onehot = torch.zeros(h * w, nb, dtype=torch.float64)
    onehot[torch.arange(h * w), pidx] = 1.0
    kept = (c @ onehot) > 0  # (n, nb)
    region = kept.double() @ onehot.T  # (n, H·W): points of the kept tiles
    tiles = (m @ onehot) > 0  # (m, nb): tiles each mask observes
    n_obs = tiles.sum(1).double()[None, :]
    n_drop = torch.clamp(torch.minimum(n_obs - 1, torch.full_like(n_obs, partition.drop_blocks)), 0)
    dropped = n_obs - kept.sum(1, keepdim=True).double()
    ok = (outside == 0) & (region @ m.T == n_ctx) & (dropped == n_drop)
    logw = -torch.lgamma(n_obs + 1) + torch.lgamma(n_drop + 1) + torch.lgamma(n_obs - n_drop + 1)
    logw = torch.where(ok, logw.expand_as(ok), -math.inf)
    prob = torch.softmax(logw, dim=1) @ m  # P(i ∈ M | ctx)
    return prob if partition.query_all else prob * (1.0 - region)


def _signature(
    ctx: torch.Tensor, family: MaskFamily, partition: Partition, h: int, w: int
) -> torch.Tensor:
    """Group code of every context ``(n, H·W)``: the bit mask of the tiles it touches (tiled
    cases) or 0 (pixel partition of pixel masks), long ``(n,)``."""
    if family.kind == "pixel" and partition.kind == "pixel":
        return torch.zeros(ctx.shape[0], dtype=torch.long)
    blocks = partition.blocks if partition.kind == "block" else family.blocks
    if blocks**2 > 62:
        raise ValueError(f"the sampled audit supports at most 62 tiles, got {blocks**2}")
    pidx = block_index(h, w, blocks).flatten()
    touched = torch.zeros(ctx.shape[0], blocks**2, dtype=torch.bool)
    touched.scatter_reduce_(1, pidx.expand_as(ctx), ctx, reduce="amax")
    return (touched.long() << torch.arange(blocks**2)).sum(1)


def _sampled(
    family: MaskFamily,
    partition: Partition,
    frames: int,
    h: int,
    w: int,
    samples: int,
    generator: torch.Generator,
    min_hits: float,
    max_samples: int,
) -> dict:
    """Monte-Carlo estimate: batches of ``samples`` joint draws of ``(M, ctx, qry)``, counted
    per (context group, point) cell. A cell counts towards the minimum and the zero flags only
    once it holds ``min_hits / ref`` outside-context draws, ``ref`` being the overall exposure,
    so that a positive exposure near ``ref`` is not mistaken for zero by chance
    (``P ≈ e^-min_hits``). Batches are drawn until such cells hold 95% of all outside-context
    draws (``coverage``) or ``max_samples`` draws are reached; rarer groups are left out."""
    codes, hits, trials = [], [], []
    drawn = 0
    while True:
        _, ctx, qry = _draw(family, partition, samples, frames, h, w, generator)
        drawn += samples
        outside = ~ctx
        code, group = torch.unique(_signature(ctx, family, partition, h, w), return_inverse=True)
        codes.append(code)
        hits.append(torch.zeros(len(code), h * w, dtype=torch.float64))
        hits[-1].index_add_(0, group, (qry & outside).double())
        trials.append(torch.zeros(len(code), h * w, dtype=torch.float64))
        trials[-1].index_add_(0, group, outside.double())
        code, group = torch.unique(torch.cat(codes), return_inverse=True)  # merge batches
        zeros = torch.zeros(len(code), h * w, dtype=torch.float64)
        cell_hits = zeros.index_add(0, group, torch.cat(hits))
        cell_trials = zeros.index_add(0, group, torch.cat(trials))
        codes, hits, trials = [code], [cell_hits], [cell_trials]
        total = float(cell_trials.sum())
        ref = float(cell_hits.sum()) / max(total, 1.0)
        needed = min_hits / ref if ref > 0 else min_hits
        sure = cell_trials >= needed
        coverage = float(cell_trials[sure].sum()) / total if total > 0 else 1.0
        if coverage >= 0.95 or drawn >= max_samples:
            break
    rate = cell_hits / cell_trials.clamp_min(1.0)
    low = torch.where(sure, rate, math.inf).min(0).values
    zero_cells = torch.where(sure & (rate <= ZERO), cell_trials, 0.0)
    point_hits, point_trials = cell_hits.sum(0), cell_trials.sum(0)
    mean = point_hits / point_trials
    noise = (mean * (1 - mean) / point_trials).sqrt() / mean
    return {
        "min": low,
        "mean": mean,
        "zero_rate": zero_cells.sum(0) / point_trials,
        "zero_mass": float(zero_cells.sum()) / max(total, 1.0),
        "noise_cv": float(noise[noise.isfinite()].mean()) if noise.isfinite().any() else math.nan,
        "coverage": coverage,
        "samples": drawn,
    }


def audit(
    family: MaskFamily,
    partition: Partition,
    *,
    frames: int,
    h: int,
    w: int,
    samples: int = 2000,
    generator: torch.Generator,
    method: Literal["auto", "exact", "mc"] = "auto",
    min_hits: float = MIN_HITS,
    max_samples: int = MAX_SAMPLES,
) -> ExposureReport:
    """Estimate the query exposure of every point outside the context (Theorem 1).

    Args:
        family: observation-mask family ``p(M)``.
        partition: partition strategy; its ``static`` flag must equal the family's.
        frames, h, w: field shape ``T × H × W`` (non-static masks: frames are samples too).
        samples: contexts (exact), or joint draws per batch (mc).
        generator: source of every draw.
        method: ``"exact"`` (block families only), ``"mc"``, or ``"auto"`` (exact when the
            family is tiled).
        min_hits: mc: queries a point must be expected to collect at the overall exposure
            before its estimate counts (see :func:`_sampled`).
        max_samples: mc: most joint draws in all.
    Returns:
        The report; its maps are ``(H, W)``.
    """
    if partition.static != family.static:
        raise ValueError(
            f"partition.static={partition.static} must equal family.static={family.static}"
        )
    enumerable = family.kind == "block" and partition.kind in ("pixel", "block")
    if method == "auto":
        method = "exact" if enumerable else "mc"
    if method == "exact" and not enumerable:
        raise ValueError(
            "the exact audit enumerates block masks under pixel or block partitions: "
            "use method='mc'"
        )
    if method == "exact":
        _, ctx, _ = _draw(family, partition, samples, frames, h, w, generator)
        outside = ~ctx
        unique, inverse = torch.unique(ctx, dim=0, return_inverse=True)
        exposure = _exact_exposure(unique, _block_masks(family, h, w), partition, h, w)[inverse]
        out = outside.double()
        est = {
            "min": torch.where(outside, exposure, math.inf).min(0).values,
            "mean": (exposure * out).sum(0) / out.sum(0),
            "zero_rate": ((exposure <= ZERO) & outside).sum(0) / out.sum(0),
            "zero_mass": float(((exposure <= ZERO) & outside).sum() / outside.sum()),
            "noise_cv": 0.0,
            "coverage": 1.0,
            "samples": samples,
        }
    else:
        est = _sampled(family, partition, frames, h, w, samples, generator, min_hits, max_samples)
    low = torch.where(est["min"].isinf(), math.nan, est["min"])
    return ExposureReport(
        family=family,
        partition=partition,
        method=method,
        samples=est["samples"],
        min_map=low.view(h, w).float(),
        mean_map=est["mean"].view(h, w).float(),
        zero_rate_map=est["zero_rate"].view(h, w).float(),
        zero_mass=est["zero_mass"],
        noise_cv=est["noise_cv"],
        coverage=est["coverage"],
    )
