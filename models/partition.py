"""Context/query partition strategies (paper Sec. 3.2, Alg. 1; METHOD.md "Partition strategies").

Each training sample's observation mask ``M`` is split into a context ``M_ctx ⊆ M`` that the
network sees and a query ``M_qry ⊆ M`` it is scored on, drawn with the structure of the
observation family (Principle 1: uniform query exposure):

- pixel partition: ``M_ctx = M ⊙ Bernoulli(r_ctx)``, ``M_qry = M ⊙ Bernoulli(r_qry)``, drawn
  independently (they may overlap); with static masks one draw per grid point for all frames.
  ``r_ctx = r_qry = 1`` is MissDiff; ``r_ctx = 1 − δ, r_qry = 1`` is AmbientDiff's corruption.
- block partition: ``M_ctx = M`` minus ``n`` randomly chosen observed tiles, ``M_qry`` = the
  removed tiles (or all of ``M`` with ``query_all``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from incdyn.datasets.masks import block_index


@dataclass(frozen=True)
class Partition:
    """A partition strategy.

    Attributes:
        kind: ``"pixel"`` or ``"block"``.
        context_ratio: pixel partition: probability that an observed point enters the context.
        query_ratio: pixel partition: probability that an observed point enters the query.
        blocks: block partition: tiles per side (must match the observation family).
        drop_blocks: block partition: observed tiles removed from the context per sample.
        query_all: block partition: query all of ``M`` instead of the removed tiles only.
        static: draw one spatial partition for all frames (matches static observation masks).
    """

    kind: Literal["pixel", "block"] = "pixel"
    context_ratio: float = 0.7
    query_ratio: float = 0.7
    blocks: int = 3
    drop_blocks: int = 1
    query_all: bool = False
    static: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("pixel", "block"):
            raise ValueError(f"partition kind {self.kind!r} is not one of 'pixel', 'block'")
        for name in ("context_ratio", "query_ratio"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"partition {name}={value} must lie in (0, 1]")
        if self.drop_blocks < 1:
            raise ValueError(f"partition drop_blocks={self.drop_blocks} must be >= 1")

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
        dropped_points = dropped[:, index].view(frames.shape)
        if self.static:
            dropped_points = dropped_points.expand_as(mask)
        ctx = mask & ~dropped_points
        qry = mask.clone() if self.query_all else mask & dropped_points
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
        ctx = self._bernoulli(mask, self.context_ratio, generator)
        qry = self._bernoulli(mask, self.query_ratio, generator)
        return ctx, qry

    def context(self, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw a context mask only (inference, Sec. 3.3)."""
        if self.kind == "block":
            return self._blocks(mask, generator)[0]
        return self._bernoulli(mask, self.context_ratio, generator)

    def with_context_ratio(self, ratio: float) -> Partition:
        """The same strategy with another context ratio (cross-distribution, App. G.3)."""
        return Partition(**{**self.__dict__, "context_ratio": min(1.0, ratio)})
