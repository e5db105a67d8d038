"""Observation-mask families p(M) (paper Sec. 4.1; METHOD.md "Setting").

A mask is bool ``(T, H, W)``, True where a point is observed, shared by all channels. Two
families, both static over time by default (one spatial mask repeated over the frames, as in the
paper's release): pixel-level i.i.d. with observed fraction ``p``, and block-wise (the grid cut
``blocks × blocks``, ``k`` of the blocks observed). Every mask has at least one observed point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class MaskFamily:
    """A family of observation masks.

    Attributes:
        kind: ``"pixel"`` (i.i.d. Bernoulli(p) per grid point) or ``"block"`` (``k`` of the
            ``blocks × blocks`` tiles observed, chosen uniformly).
        p: observed fraction for ``pixel`` masks, in (0, 1].
        k: observed tiles for ``block`` masks, in [1, blocks²].
        blocks: tiles per side for ``block`` masks (the paper uses 3).
        static: one spatial mask for all frames (True) or a fresh one per frame.
    """

    kind: Literal["pixel", "block"] = "pixel"
    p: float = 0.2
    k: int = 8
    blocks: int = 3
    static: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("pixel", "block"):
            raise ValueError(f"mask kind {self.kind!r} is not one of 'pixel', 'block'")
        if not 0.0 < self.p <= 1.0:
            raise ValueError(f"mask p={self.p} must lie in (0, 1]")
        if self.blocks < 1:
            raise ValueError(f"mask blocks={self.blocks} must be >= 1")
        if not 1 <= self.k <= self.blocks**2:
            raise ValueError(f"mask k={self.k} must lie in [1, {self.blocks**2}]")


def block_slices(size: int, blocks: int) -> list[slice]:
    """Split ``size`` grid points into ``blocks`` contiguous tiles (the first tiles get the rest)."""
    base, extra = divmod(size, blocks)
    edges = [0]
    for b in range(blocks):
        edges.append(edges[-1] + base + (1 if b < extra else 0))
    return [slice(edges[b], edges[b + 1]) for b in range(blocks)]


def block_index(h: int, w: int, blocks: int, device: torch.device | None = None) -> torch.Tensor:
    """``(H, W)`` long tensor giving the tile number ``row * blocks + col`` of every point."""
    index = torch.empty(h, w, dtype=torch.long, device=device)
    for i, rows in enumerate(block_slices(h, blocks)):
        for j, cols in enumerate(block_slices(w, blocks)):
            index[rows, cols] = i * blocks + j
    return index


def blocks_to_mask(chosen: torch.Tensor, h: int, w: int, blocks: int) -> torch.Tensor:
    """Expand a bool ``(..., blocks²)`` tile selection to a ``(..., H, W)`` point mask."""
    index = block_index(h, w, blocks, device=chosen.device)
    return chosen[..., index]


def _spatial(
    family: MaskFamily, n: int, h: int, w: int, generator: torch.Generator
) -> torch.Tensor:
    if family.kind == "pixel":
        mask = torch.rand(n, h, w, generator=generator) < family.p
        empty = ~mask.flatten(1).any(dim=1)
        if empty.any():  # guarantee one observed point per mask
            flat = torch.randint(h * w, (int(empty.sum()),), generator=generator)
            mask[empty] = torch.nn.functional.one_hot(flat, h * w).bool().view(-1, h, w)
        return mask
    nb = family.blocks**2
    order = torch.rand(n, nb, generator=generator).argsort(dim=1)
    chosen = order < family.k
    return blocks_to_mask(chosen, h, w, family.blocks)


def sample_masks(
    family: MaskFamily, n: int, frames: int, h: int, w: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``n`` observation masks, bool ``(n, T, H, W)``."""
    if family.static:
        return _spatial(family, n, h, w, generator)[:, None].expand(n, frames, h, w).clone()
    return _spatial(family, n * frames, h, w, generator).view(n, frames, h, w)


def sample_seed(seed: int, split: str, index: int) -> int:
    """Seed of one sample's mask, from ``(seed, split, index)``: masks do not depend on sharding."""
    split_id = {"train": 1, "val": 2, "test": 3}[split]
    return (seed * 1_000_003 + split_id * 7_919 + index * 104_729) % (2**63 - 1)


def masks_for_samples(
    family: MaskFamily, seed: int, split: str, indices: range, frames: int, h: int, w: int
) -> torch.Tensor:
    """Masks of samples ``indices`` of ``split``, each seeded by :func:`sample_seed`."""
    out = torch.empty(len(indices), frames, h, w, dtype=torch.bool)
    for j, i in enumerate(indices):
        g = torch.Generator().manual_seed(sample_seed(seed, split, i))
        out[j] = sample_masks(family, 1, frames, h, w, g)[0]
    return out
