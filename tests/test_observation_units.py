"""Observation units of one frame: points, tiles and station disks over candidate points."""

from __future__ import annotations

import pytest
import torch

from incdyn.models.observation_units import frame_units


def _entries(units, u: int) -> set[int]:
    return set(units.entry[units.unit == u].tolist())


def test_points_tiles_and_stations_cover_only_candidates_in_every_channel():
    h, w, frames, channels = 6, 7, 3, 2
    candidates = torch.zeros(h, w, dtype=torch.bool)
    candidates[1, 2] = candidates[4, 6] = candidates[5, 0] = True
    flat = lambda c, y, x: c * frames * h * w + 1 * h * w + y * w + x  # noqa: E731 (frame 1)
    fu = frame_units("point", candidates, channels=channels, frames=frames, frame=1)
    assert fu.units.count == 3 and fu.where == [
        {"y": 1, "x": 2},
        {"y": 4, "x": 6},
        {"y": 5, "x": 0},
    ]
    assert _entries(fu.units, 1) == {flat(0, 4, 6), flat(1, 4, 6)}
    fu = frame_units("tile", candidates, channels=channels, frames=frames, frame=1, tile=4)
    # tiles (0:4, 0:4) holds (1, 2); (4:6, 4:7) holds (4, 6); (4:6, 0:4) holds (5, 0)
    assert fu.where == [
        {"y0": 0, "x0": 0, "y1": 4, "x1": 4},
        {"y0": 4, "x0": 0, "y1": 6, "x1": 4},
        {"y0": 4, "x0": 4, "y1": 6, "x1": 7},
    ]
    assert _entries(fu.units, 2) == {flat(0, 4, 6), flat(1, 4, 6)}
    sites = [(0, 0), (5, 1), (4, 5)]  # the first disk (radius 1.5) holds no candidate
    fu = frame_units(
        "station", candidates, channels=channels, frames=frames, frame=1, sites=sites, radius=1.5
    )
    assert fu.where == [{"y": 5, "x": 1}, {"y": 4, "x": 5}]
    assert _entries(fu.units, 0) == {flat(0, 5, 0), flat(1, 5, 0)}  # disk cut at the edge
    assert _entries(fu.units, 1) == {flat(0, 4, 6), flat(1, 4, 6)}


def test_bad_units_are_named():
    candidates = torch.ones(4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="frame=3 lies outside the window's 3 frames"):
        frame_units("point", candidates, channels=1, frames=3, frame=3)
    with pytest.raises(ValueError, match="station units need candidate sites"):
        frame_units("station", candidates, channels=1, frames=1, frame=0)
    with pytest.raises(ValueError, match=r"site \(9, 0\) lies outside the 4×4 grid"):
        frame_units("station", candidates, channels=1, frames=1, frame=0, sites=[(9, 0)])
