"""Context/query partition strategies (paper Sec. 3.2, Alg. 1) and the inference partition (App. G.3).

Each training sample's observation mask ``M`` is split into a context ``M_ctx ⊆ M`` that the
network sees and a query ``M_qry ⊆ M`` it is scored on, drawn with the structure of the
observation family (Principle 1: uniform query exposure):

- pixel partition: ``M_ctx = M ⊙ Bernoulli(r_ctx)``, ``M_qry = M ⊙ Bernoulli(r_qry)``, drawn
  independently (they may overlap); with static masks one draw per grid point for all frames.
  ``r_ctx = r_qry = 1`` is MissDiff; ``r_ctx = 1 − δ, r_qry = 1`` is AmbientDiff's corruption.
- block partition: ``M_ctx = M`` minus ``n`` randomly chosen observed tiles, ``M_qry`` = the
  removed tiles (or all of ``M`` with ``query_all``).
- station partition (station masks): ``M_ctx = M`` minus ``n`` whole stations, ``M_qry`` = the
  removed stations (or all of ``M`` with ``query_all``). A station is a disk of the family's
  radius, cut at the grid's edges, that lies inside ``M`` and inside no larger such disk; its
  centre is drawn uniformly among those points. Every site of an isolated station is one, so
  isolated stations are dropped whole; where disks overlap, station-sized disks between the
  sites count too. At least one observed point stays in the context.
- cloud partition (cloud masks; Principle 1 carried from tiles to clouds): a cloud drawn like
  the family's own (a smooth random field of the family's correlation length, thresholded to
  cover ``1 − r_ctx`` of the grid) hides the observed points under it: ``M_qry`` = those points
  (or all of ``M`` with ``query_all``), ``M_ctx`` = the rest. Given a context, any point
  outside it may lie under the hidden cloud, however large the real gap around it; a pixel
  partition hides pinholes only, so the inside of a large real gap is never queried. At least
  one observed point per frame stays in the context.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from incdyn.datasets.masks import MaskFamily, block_index, cloud_masks, disk_kernel

Ratio = Annotated[float, Field(gt=0.0, le=1.0)]


@lru_cache(maxsize=16)
def _dominance(h: int, w: int, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat point indices ``(src, dst)``, two long ``(P,)``: the disk around ``dst`` strictly
    contains the disk around ``src`` (both cut at the grid's edges; only near the edges)."""
    kernel = disk_kernel(radius)
    r = kernel.shape[-1] // 2
    disk = kernel.nonzero() - r  # (D, 2) offsets of one disk
    ii = torch.arange(h).view(h, 1, 1)
    jj = torch.arange(w).view(1, w, 1)

    def inside(di: torch.Tensor, dj: torch.Tensor) -> torch.Tensor:  # (H, W, D)
        return (ii + di >= 0) & (ii + di < h) & (jj + dj >= 0) & (jj + dj < w)

    src, dst = [], []
    index = torch.arange(h * w).view(h, w)
    for oi in range(-r, r + 1):
        for oj in range(-r, r + 1):
            if oi == 0 and oj == 0:
                continue
            di, dj = disk[:, 0], disk[:, 1]
            far = (di - oi) ** 2 + (dj - oj) ** 2 > radius**2  # disk points outside the other
            subset = ~(inside(di, dj) & far).any(-1)
            beyond = (oi + di) ** 2 + (oj + dj) ** 2 > radius**2  # other-disk points outside
            grows = (inside(oi + di, oj + dj) & beyond).any(-1)
            contained = subset & grows & inside(torch.tensor(oi), torch.tensor(oj))[..., 0]
            src.append(index[contained])
            dst.append(index[contained] + oi * w + oj)
    if not src:  # radius < 1: one-point disks never contain one another
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(src), torch.cat(dst)


class PartitionSpec(BaseModel):
    """A partition strategy as an experiment spec names it (a method's ``partition`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pixel", "block", "station", "cloud"] = "pixel"  # the masks' structure
    context_ratio: Ratio = 0.7  # pixel: probability that an observed point enters the context;
    # cloud: share of the grid outside the hidden cloud region
    query_ratio: Ratio = 0.7  # pixel: probability that an observed point enters the query
    drop_blocks: int = Field(1, ge=1)  # block: observed tiles moved from context to query
    drop_stations: int = Field(1, ge=1)  # station: whole stations moved from context to query
    query_all: bool = False  # block/station/cloud: query all of M, not only the dropped part


class Partition(PartitionSpec):
    """A partition strategy with the structure of its observation family, ready to draw masks.

    Attributes (beyond :class:`PartitionSpec`'s):
        blocks: block partition: tiles per side (the observation family's).
        static: one spatial partition for all frames (matches static observation masks).
        radius: station partition: disk radius in grid points (the observation family's).
        scale: cloud partition: correlation length of the hidden clouds in grid points (the
            observation family's).
    """

    blocks: int = Field(3, ge=1)
    static: bool = True
    radius: float = Field(3.0, ge=0.0)
    scale: float = Field(4.0, gt=0.0)

    def _bernoulli(self, mask: torch.Tensor, ratio: float, g: torch.Generator) -> torch.Tensor:
        if ratio >= 1.0:
            return mask.clone()
        b, t, h, w = mask.shape
        if self.static:
            keep = torch.rand(b, 1, h, w, generator=g, device=mask.device) < ratio
        else:
            keep = torch.rand(b, t, h, w, generator=g, device=mask.device) < ratio
        return mask & keep

    def _blocks(self, mask: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = mask.shape[-2:]
        nb = self.blocks**2
        index = block_index(h, w, self.blocks, device=mask.device)  # (H, W)
        frames = mask if not self.static else mask[:, :1]
        flat = frames.reshape(-1, h * w)
        # tile observed <=> any of its points observed (block masks are constant on tiles)
        observed = torch.zeros(flat.shape[0], nb, dtype=torch.bool, device=mask.device)
        observed.scatter_reduce_(1, index.flatten().expand_as(flat), flat, reduce="amax")
        count = observed.sum(dim=1)
        n_drop = torch.clamp(torch.minimum(count - 1, torch.full_like(count, self.drop_blocks)), 0)
        # rank observed tiles in a random order; drop the first n_drop of them
        score = torch.rand(observed.shape, generator=g, device=mask.device)
        score = torch.where(observed, score, torch.full_like(score, 2.0))
        rank = score.argsort(dim=1).argsort(dim=1)
        dropped = observed & (rank < n_drop[:, None])
        return self._remove(mask, dropped[:, index].view(frames.shape))

    def _stations(
        self, mask: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = mask.shape[-2:]
        frames = mask if not self.static else mask[:, :1]
        flat = frames.reshape(-1, h, w)
        kernel = disk_kernel(self.radius).to(mask.device, torch.float32)
        r = kernel.shape[-1] // 2
        # station centres: points whose whole disk lies in M (beyond the edges counts as
        # observed, as the disks of sites near an edge are cut there)
        holes = F.conv2d((~flat).float()[:, None], kernel[None, None], padding=r)[:, 0]
        sites = (flat & (holes == 0)).flatten(1)
        src, dst = (i.to(mask.device) for i in _dominance(h, w, float(self.radius)))
        if len(src):  # maximal disks only, so that isolated stations are dropped whole
            larger = torch.zeros(sites.shape, device=mask.device)
            larger.index_add_(1, src, sites[:, dst].float())  # sites whose disk has a larger one
            sites &= larger == 0
        ii = torch.arange(h, device=mask.device).view(1, h, 1)
        jj = torch.arange(w, device=mask.device).view(1, 1, w)
        dropped = torch.zeros_like(flat)
        for _ in range(self.drop_stations):  # one station at a time, each kept only if the
            free = sites & ~dropped.flatten(1)  # context keeps an observed point
            score = torch.rand(free.shape, generator=g, device=mask.device)
            centre = torch.where(free, score, torch.full_like(score, -1.0)).argmax(dim=1)
            ci, cj = (centre // w)[:, None, None], (centre % w)[:, None, None]
            disk = (ii - ci) ** 2 + (jj - cj) ** 2 <= self.radius**2
            candidate = dropped | disk
            ok = free.any(dim=1) & (flat & ~candidate).flatten(1).any(dim=1)
            dropped = torch.where(ok[:, None, None], candidate, dropped)
        return self._remove(mask, dropped.view(frames.shape))

    def _clouds(self, mask: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # a cloud drawn like the family's clouds hides ``1 − r_ctx`` of the grid; at least one
        # observed point stays in the context
        frames = mask if not self.static else mask[:, :1]
        b, t, h, w = frames.shape
        if self.context_ratio >= 1.0:
            return self._remove(mask, torch.zeros_like(frames))
        clouds = MaskFamily(kind="cloud", p=1.0 - self.context_ratio, scale=self.scale)
        hidden = cloud_masks(clouds, b * t, h, w, g).view(b, t, h, w).to(mask.device)
        empty = ~(frames & ~hidden).flatten(2).any(-1)  # (B, T): the cloud hid every point
        hidden &= ~empty[..., None, None]
        return self._remove(mask, hidden)

    def _remove(
        self, mask: torch.Tensor, dropped: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context = M minus the dropped points; query = the dropped points (or all of M)."""
        if self.static:
            dropped = dropped.expand_as(mask)
        ctx = mask & ~dropped
        qry = mask.clone() if self.query_all else mask & dropped
        return ctx, qry

    def split(
        self, mask: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(M_ctx, M_qry)`` for a bool mask ``(B, T, H, W)``; both bool, same shape."""
        if mask.ndim != 4 or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be bool (B, T, H, W), got {mask.dtype} {tuple(mask.shape)}"
            )
        if self.kind == "block":
            return self._blocks(mask, generator)
        if self.kind == "station":
            return self._stations(mask, generator)
        if self.kind == "cloud":
            return self._clouds(mask, generator)
        ctx = self._bernoulli(mask, self.context_ratio, generator)
        qry = self._bernoulli(mask, self.query_ratio, generator)
        return ctx, qry

    def context(self, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw a context mask only (inference, Sec. 3.3)."""
        if self.kind == "block":
            return self._blocks(mask, generator)[0]
        if self.kind == "station":
            return self._stations(mask, generator)[0]
        if self.kind == "cloud":
            return self._clouds(mask, generator)[0]
        return self._bernoulli(mask, self.context_ratio, generator)

    def with_context_ratio(self, ratio: float) -> Partition:
        """The same strategy with another context ratio (cross-distribution, App. G.3)."""
        return Partition(**{**self.model_dump(), "context_ratio": min(1.0, ratio)})


def partition_for(strategy: PartitionSpec, family: MaskFamily) -> Partition:
    """A method's partition strategy with the structure of the observation family."""
    return Partition(
        **strategy.model_dump(),
        blocks=family.blocks,
        static=family.static,
        radius=family.radius,
        scale=family.scale,
    )


def cross_distribution_ratio(train_p: float, context_ratio: float, test_p: float) -> float:
    """Context ratio at test observation ratio ``test_p`` that keeps the training-time input
    density ``train_p · context_ratio`` (App. G.3): ``min(1, p·r / p′)``."""
    for name, value in (("train_p", train_p), ("context_ratio", context_ratio), ("test_p", test_p)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name}={value} must lie in (0, 1]")
    return min(1.0, train_p * context_ratio / test_p)


def inference_partition(
    strategy: PartitionSpec, family: MaskFamily, test_family: MaskFamily | None
) -> Partition:
    """The partition of inference: the training one, with the context ratio rescaled by
    :func:`cross_distribution_ratio` when pixel test masks have another observed fraction."""
    partition = partition_for(strategy, family)
    if partition.kind == "pixel" and test_family is not None and test_family.kind == "pixel":
        ratio = cross_distribution_ratio(family.p, partition.context_ratio, test_family.p)
        partition = partition.with_context_ratio(ratio)
    return partition
