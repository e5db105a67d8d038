"""Station-like observation masks (disks around sensor sites) and their station partition."""

from __future__ import annotations

import pytest
import torch

from incdyn.datasets.masks import (
    MaskFamily,
    disks_to_mask,
    masks_for_samples,
    sample_masks,
    station_sites,
)
from incdyn.models.partition import Partition


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _disk(h: int, w: int, row: int, col: int, radius: float) -> torch.Tensor:
    """One disk, written out point by point (independent of the vectorised code)."""
    out = torch.zeros(h, w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            out[i, j] = (i - row) ** 2 + (j - col) ** 2 <= radius**2
    return out


def test_every_station_mask_has_an_observed_point():
    for radius in (0.0, 1.0, 2.5):
        fam = MaskFamily(kind="station", stations=1, radius=radius)
        m = sample_masks(fam, 200, 2, 12, 10, _g())
        assert m.shape == (200, 2, 12, 10) and m.dtype == torch.bool
        assert m.flatten(1).any(dim=1).all()
        assert (m == m[:, :1]).all()  # static by default


def test_observed_set_is_the_union_of_the_disks():
    fam = MaskFamily(kind="station", stations=5, radius=2.5)
    h, w = 17, 13
    m = sample_masks(fam, 6, 1, h, w, _g(3))[:, 0]
    rows, cols = station_sites(fam, 6, h, w, _g(3))  # the same draw as the masks
    for n in range(6):
        union = torch.zeros(h, w, dtype=torch.bool)
        for r, c in zip(rows[n].tolist(), cols[n].tolist(), strict=True):
            union |= _disk(h, w, r, c, fam.radius)
        assert torch.equal(m[n], union)


def test_time_varying_station_masks_and_per_sample_seeds():
    fam = MaskFamily(kind="station", stations=3, radius=1.5, static=False)
    m = sample_masks(fam, 4, 3, 16, 16, _g())
    assert not (m[:, 0] == m[:, 1]).all()
    a = masks_for_samples(fam, 7, "train", range(0, 4), 3, 16, 16)
    b = masks_for_samples(fam, 7, "train", range(2, 4), 3, 16, 16)
    assert torch.equal(a[2:], b)  # a sample's mask does not depend on sharding


def test_bad_station_settings_are_refused():
    with pytest.raises(ValueError, match="stations"):
        MaskFamily(kind="station", stations=0)
    with pytest.raises(ValueError, match="radius"):
        MaskFamily(kind="station", radius=-1.0)
    with pytest.raises(ValueError, match="drop_stations"):
        Partition(kind="station", drop_stations=0)


def test_station_partition_is_a_split_of_the_mask():
    fam = MaskFamily(kind="station", stations=6, radius=2.0)
    m = sample_masks(fam, 128, 3, 24, 20, _g(1))
    part = Partition(kind="station", radius=2.0, drop_stations=2)
    ctx, qry = part.split(m, _g(2))
    assert not (ctx & ~m).any() and not (qry & ~m).any()  # ctx, qry ⊆ M
    assert not (ctx & qry).any() and torch.equal(ctx | qry, m)  # query = what was dropped
    assert ctx.flatten(1).any(dim=1).all()  # the context keeps an observed point
    assert qry.flatten(1).any(dim=1).float().mean() > 0.9  # and something is queried
    assert (ctx == ctx[:, :1]).all()  # static masks -> static partition
    assert torch.equal(part.context(m, _g(2)), ctx)
    _, everything = Partition(kind="station", radius=2.0, query_all=True).split(m, _g(2))
    assert torch.equal(everything, m)


def test_station_partition_drops_whole_stations():
    """Separated stations (one at the edge, cut there): each is in the context or the query whole."""
    h, w, radius = 30, 30, 2.5
    sites = [(4, 5), (5, 22), (15, 14), (24, 4), (0, 27)]
    rows = torch.tensor([[r for r, _ in sites]]).repeat(64, 1)
    cols = torch.tensor([[c for _, c in sites]]).repeat(64, 1)
    m = disks_to_mask(rows, cols, h, w, radius)[:, None].expand(64, 2, h, w).clone()
    disks = [_disk(h, w, r, c, radius) for r, c in sites]
    ctx, qry = Partition(kind="station", radius=radius, drop_stations=2).split(m, _g(5))
    chosen = set()
    for n in range(64):
        dropped = tuple(i for i, d in enumerate(disks) if qry[n, 0][d].all())
        for d in disks:  # whole stations only
            assert ctx[n, 0][d].all() != qry[n, 0][d].all()
        query = torch.zeros(h, w, dtype=torch.bool)
        for i in dropped:
            query |= disks[i]
        assert len(dropped) == 2 and torch.equal(qry[n, 0], query)  # query = dropped stations
        chosen.add(dropped)
    assert len(chosen) > 5  # different stations are dropped in different samples


def test_single_station_stays_in_the_context():
    fam = MaskFamily(kind="station", stations=1, radius=2.0)
    m = sample_masks(fam, 32, 1, 16, 16, _g())
    ctx, qry = Partition(kind="station", radius=2.0).split(m, _g())
    assert torch.equal(ctx, m) and not qry.any()


def test_spec_selects_station_masks_and_partition():
    from incdyn.models.partition import partition_for
    from incdyn.platform.spec import SpecError, parse_spec

    observation = {"kind": "station", "stations": 4, "radius": 2.5}
    method = {"name": "ours", "partition": {"kind": "station", "drop_stations": 2}}
    spec = parse_spec({"name": "t", "data": {"observation": observation}, "methods": [method]})
    assert spec.data.observation == MaskFamily(kind="station", stations=4, radius=2.5)
    part = partition_for(spec.methods[0].partition, spec.data.observation)
    assert (part.kind, part.radius, part.drop_stations) == ("station", 2.5, 2)
    assert "station 4×r2.5" in spec.setting
    with pytest.raises(SpecError, match="station partition needs station observation masks"):
        parse_spec({"name": "t", "methods": [method]})
    with pytest.raises(SpecError, match=r"data\.observation\.stations"):
        parse_spec({"name": "t", "data": {"observation": {"stations": 0}}, "methods": [method]})
