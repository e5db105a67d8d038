"""Candidate observation units of one frame: grid points, stations (disks) and satellite tiles.

A unit is the set of field entries ``(channel, frame, y, x)`` that one new observation would
reveal: every channel at its grid points (masks are shared by the channels). Only candidate
points count — unobserved and inside the domain — so an observed or land point adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from incdyn.datasets.masks import disk_kernel
from incdyn.models.targeting import Units

UnitKind = Literal["point", "station", "tile"]


@dataclass(frozen=True)
class FrameUnits:
    """The units of one frame and where they are.

    Attributes:
        units: (entry, unit) pairs over the flattened ``(C, T, H, W)`` field.
        where: per unit, its position: ``{"y", "x"}`` (point, station centre) or
            ``{"y0", "x0", "y1", "x1"}`` (tile rows ``y0:y1``, columns ``x0:x1``).
    """

    units: Units
    where: list[dict[str, int]]


def frame_units(
    kind: UnitKind,
    candidates: torch.Tensor,
    *,
    channels: int,
    frames: int,
    frame: int,
    tile: int = 4,
    sites: list[tuple[int, int]] | None = None,
    radius: float = 1.0,
) -> FrameUnits:
    """The units of frame ``frame`` over candidate points, bool ``(H, W)``.

    ``point``: each candidate point; ``tile``: the ``tile × tile`` tiles of the grid (the last
    ones cut at the edges) that hold a candidate; ``station``: a disk of ``radius`` around each
    of ``sites`` (``(y, x)`` pairs) that holds a candidate. Units without a candidate are left
    out; a unit's entries are its candidate points in every channel.
    """
    h, w = candidates.shape
    if not 0 <= frame < frames:
        raise ValueError(f"frame={frame} lies outside the window's {frames} frames")
    groups: list[torch.Tensor] = []  # flat (y·W + x) candidate points of each unit
    where: list[dict[str, int]] = []
    if kind == "point":
        for flat in candidates.flatten().nonzero().flatten().tolist():
            groups.append(torch.tensor([flat]))
            where.append({"y": flat // w, "x": flat % w})
    elif kind == "tile":
        if tile < 1:
            raise ValueError(f"tile={tile} must be >= 1 grid point")
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                box = torch.zeros_like(candidates)
                box[y0 : y0 + tile, x0 : x0 + tile] = True
                inside = (box & candidates).flatten().nonzero().flatten()
                if len(inside):
                    groups.append(inside)
                    where.append(
                        {"y0": y0, "x0": x0, "y1": min(y0 + tile, h), "x1": min(x0 + tile, w)}
                    )
    elif kind == "station":
        if not sites:
            raise ValueError("station units need candidate sites: a list of (y, x) grid positions")
        kernel = disk_kernel(radius)
        r = kernel.shape[0] // 2
        for y, x in sites:
            if not (0 <= y < h and 0 <= x < w):
                raise ValueError(f"station site ({y}, {x}) lies outside the {h}×{w} grid")
            box = torch.zeros(h + 2 * r, w + 2 * r, dtype=torch.bool)
            box[y : y + 2 * r + 1, x : x + 2 * r + 1] = kernel
            inside = (box[r : r + h, r : r + w] & candidates).flatten().nonzero().flatten()
            if len(inside):
                groups.append(inside)
                where.append({"y": y, "x": x})
    else:
        raise ValueError(f"unit kind {kind!r}: one of point, station, tile")
    if not groups:
        return FrameUnits(
            Units(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 0), []
        )
    points = torch.cat(groups)
    ids = torch.cat([torch.full((len(g),), i, dtype=torch.long) for i, g in enumerate(groups)])
    per_channel = frames * h * w
    offsets = torch.arange(channels) * per_channel + frame * h * w  # (C,)
    entry = (offsets[:, None] + points[None, :]).flatten()
    unit = ids.repeat(channels)
    return FrameUnits(Units(entry, unit, len(groups)), where)
