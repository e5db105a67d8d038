"""Where the model's windows and tiles lie over a record, how they are blended, and the
disjoint time blocks the output is written in.

Windows of the model's ``T`` frames start every ``stride`` frames (the last one ends at the
record's last frame), tiles of the model's ``h × w`` grid every ``h/2``, ``w/2`` points (the
last one ends at the grid's edge). Each estimate is weighted by a triangular taper, highest in
the middle of its window and tile and positive everywhere, so that where two estimates overlap
the blend moves from one to the other linearly and no seam shows. Output block ``b`` covers
frames ``[b·B, (b+1)·B)``; it gathers every window that overlaps it, so blocks are written
independently and still blended across their edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def starts(length: int, size: int, stride: int) -> list[int]:
    """First index of every span of ``size`` every ``stride`` covering ``[0, length)``; the last
    span ends at ``length`` (``length >= size``)."""
    if length < size:
        raise ValueError(f"a span of {size} does not fit in {length}")
    out = list(range(0, length - size + 1, stride))
    if out[-1] + size < length:
        out.append(length - size)
    return out


def taper(size: int) -> np.ndarray:
    """Triangular weights of a span: ``min(i + 1, size - i)``, float64 ``(size,)``."""
    i = np.arange(size)
    return np.minimum(i + 1, size - i).astype(np.float64)


@dataclass(frozen=True)
class Layout:
    """Windows, tiles and output blocks of one record.

    Attributes:
        frames: frames of the record (the time range).
        grid: ``(H, W)`` of the record.
        window: the model's frames per window; stride: frames between window starts.
        tile: ``(h, w)`` the network takes (the model's grid, or the record's when smaller:
            then it is padded to ``pad`` and cropped back).
        pad: ``(h, w)`` a tile is padded to before the network.
        block: frames per output block (and per time chunk of the output).
    """

    frames: int
    grid: tuple[int, int]
    window: int
    stride: int
    tile: tuple[int, int]
    pad: tuple[int, int]
    block: int

    @property
    def window_starts(self) -> list[int]:
        return starts(self.frames, self.window, self.stride)

    @property
    def tile_corners(self) -> list[tuple[int, int]]:
        (h, w), (th, tw) = self.grid, self.tile
        rows = starts(h, th, max(1, th // 2))
        cols = starts(w, tw, max(1, tw // 2))
        return [(r, c) for r in rows for c in cols]

    @property
    def n_blocks(self) -> int:
        return -(-self.frames // self.block)

    def block_frames(self, b: int) -> tuple[int, int]:
        """Frames ``[a, e)`` of output block ``b``."""
        return b * self.block, min(self.frames, (b + 1) * self.block)

    def windows_of_block(self, b: int) -> list[int]:
        """Starts of the windows that overlap block ``b``."""
        a, e = self.block_frames(b)
        return [s for s in self.window_starts if s < e and s + self.window > a]

    def tile_weight(self) -> np.ndarray:
        """``(h, w)`` weights of a tile."""
        return np.outer(taper(self.tile[0]), taper(self.tile[1]))


def layout_for(
    frames: int,
    grid: tuple[int, int],
    *,
    window: int,
    model_grid: tuple[int, int] | None,
    block: int,
    stride: int | None = None,
) -> Layout:
    """The layout of a record of ``frames`` × ``grid`` for a model of ``window`` frames and
    ``model_grid`` (None: any grid, one tile). ``stride`` defaults to half a window."""
    stride = stride or max(1, window // 2)
    if model_grid is None:
        tile = pad = tuple(grid)
    else:
        tile = tuple(min(g, m) for g, m in zip(grid, model_grid, strict=True))
        pad = tuple(model_grid)
    block = max(block, 1)
    return Layout(frames, tuple(grid), window, stride, tile, pad, block)  # type: ignore[arg-type]
