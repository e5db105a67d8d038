"""Observation-mask families p(M) (paper Sec. 4.1).

A mask is bool ``(T, H, W)``, True where a point is observed, shared by all channels. Three
families, all static over time by default (one spatial mask repeated over the frames, as in the
paper's release; ``static=False`` draws every frame afresh): pixel-level i.i.d. with observed
fraction ``p``, block-wise (the grid cut ``blocks × blocks``, ``k`` of the blocks observed), and
station-like (disks of radius ``radius`` grid points around ``stations`` sensor sites drawn
uniformly over the grid); and cloud-like (the points where a smooth Gaussian random field of
correlation length ``scale`` lies below its ``p``-quantile: spatially correlated gaps, as clouds
over a satellite field). Every mask has at least one observed point.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator


class MaskFamily(BaseModel):
    """A family of observation masks.

    Attributes:
        kind: ``"pixel"`` (i.i.d. Bernoulli(p) per grid point), ``"block"`` (``k`` of the
            ``blocks × blocks`` tiles observed, chosen uniformly) or ``"station"`` (the union of
            the disks of radius ``radius`` around ``stations`` sites, uniform over the grid).
        p: observed fraction for ``pixel`` masks, in (0, 1].
        k: observed tiles for ``block`` masks, in [1, blocks²].
        blocks: tiles per side for ``block`` masks (the paper uses 3).
        static: one spatial mask for all frames (True) or a fresh one per frame.
        stations: sensor sites of ``station`` masks (sites may coincide), >= 1.
        radius: disk radius of ``station`` masks in grid points, >= 0: a point ``(i, j)`` is
            observed when ``(i - a)² + (j - b)² <= radius²`` for a site ``(a, b)``. Disks are cut
            at the grid's edges (no periodic wrap).
        scale: correlation length of ``cloud`` masks in grid points (> 0); the observed fraction
            of a cloud mask is ``p`` (to one point).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pixel", "block", "station", "cloud"] = "pixel"  # points, tiles, disks, clouds
    p: float = Field(0.2, gt=0.0, le=1.0)  # pixel, cloud: observed fraction
    k: int = Field(8, ge=1)  # block: observed tiles
    blocks: int = Field(3, ge=1)  # block: tiles per side
    static: bool = True  # one spatial mask repeated over all frames
    stations: int = Field(8, ge=1)  # station: sensor sites per mask
    radius: float = Field(3.0, ge=0.0)  # station: observed disk radius in grid points
    scale: float = Field(4.0, gt=0.0)  # cloud: correlation length in grid points

    @model_validator(mode="after")
    def _k_fits(self) -> MaskFamily:
        if self.k > self.blocks**2:
            raise ValueError(
                f"k={self.k} exceeds the {self.blocks**2} tiles of a {self.blocks}x{self.blocks} grid"
            )
        return self

    def describe(self) -> str:
        """The family in a few words, as reports name it (``cloud p=0.5 scale=4 per frame``)."""
        text = {
            "pixel": f"pixel p={self.p:g}",
            "block": f"block {self.k}/{self.blocks**2}",
            "station": f"station {self.stations}×r{self.radius:g}",
            "cloud": f"cloud p={self.p:g} scale={self.scale:g}",
        }[self.kind]
        return text if self.static else f"{text} per frame"


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


def disk_kernel(radius: float) -> torch.Tensor:
    """Bool ``(2R + 1, 2R + 1)`` digital disk, ``R = floor(radius)``: offsets with ``di² + dj² <= radius²``."""
    r = int(radius)
    d = torch.arange(-r, r + 1)
    return d[:, None] ** 2 + d[None, :] ** 2 <= radius**2


def station_sites(
    family: MaskFamily, n: int, h: int, w: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the sensor sites of ``n`` station masks, two long ``(n, stations)``."""
    rows = torch.randint(h, (n, family.stations), generator=generator)
    cols = torch.randint(w, (n, family.stations), generator=generator)
    return rows, cols


def disks_to_mask(
    rows: torch.Tensor, cols: torch.Tensor, h: int, w: int, radius: float
) -> torch.Tensor:
    """Union of the disks of ``radius`` around sites ``(rows, cols)`` (each ``(n, S)``): bool ``(n, H, W)``."""
    ii = torch.arange(h, device=rows.device).view(1, h, 1)
    jj = torch.arange(w, device=rows.device).view(1, 1, w)
    mask = torch.zeros(rows.shape[0], h, w, dtype=torch.bool, device=rows.device)
    for s in range(rows.shape[1]):  # one station at a time: memory stays (n, H, W)
        d2 = (ii - rows[:, s, None, None]) ** 2 + (jj - cols[:, s, None, None]) ** 2
        mask |= d2 <= radius**2
    return mask


def identity(family: MaskFamily) -> dict:
    """The family's settings that determine its masks (a store's identity): ``scale`` only for
    cloud masks, so that stores of the other families keep their identity."""
    out = family.model_dump()
    if family.kind != "cloud":
        out.pop("scale")
    return out


def cloud_masks(family: MaskFamily, n: int, h: int, w: int, generator: torch.Generator):
    """``n`` cloud masks, bool ``(n, H, W)``: white noise smoothed by a Gaussian of standard
    deviation ``scale`` (periodic, in Fourier space), observed where it is below its
    ``p``-quantile — the ``round(p·H·W)`` lowest points, at least one."""
    noise = torch.randn(n, h, w, generator=generator, dtype=torch.float64)
    ky = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    gain = torch.exp(-2 * (torch.pi * family.scale) ** 2 * (ky**2 + kx**2))
    smooth = torch.fft.ifft2(torch.fft.fft2(noise) * gain).real.flatten(1)
    keep = max(1, round(family.p * h * w))
    order = smooth.argsort(dim=1)
    mask = torch.zeros(n, h * w, dtype=torch.bool)
    mask.scatter_(1, order[:, :keep], True)
    return mask.view(n, h, w)


def _spatial(
    family: MaskFamily, n: int, h: int, w: int, generator: torch.Generator
) -> torch.Tensor:
    if family.kind == "cloud":
        return cloud_masks(family, n, h, w, generator)
    if family.kind == "station":  # a site is always inside its own disk: never empty
        rows, cols = station_sites(family, n, h, w, generator)
        return disks_to_mask(rows, cols, h, w, family.radius)
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
