"""Partition strategies (Sec. 3.2): subsets of M, ratios, block structure, MissDiff limit."""

from __future__ import annotations

import pytest
import torch

from incdyn.datasets.masks import MaskFamily, block_index, sample_masks
from incdyn.models.partition import Partition


def _masks(kind: str = "pixel", n: int = 64, **kw) -> torch.Tensor:
    return sample_masks(MaskFamily(kind=kind, **kw), n, 4, 24, 24, torch.Generator().manual_seed(1))


def test_pixel_partition_subsets_and_ratios():
    m = _masks(p=0.5, n=256)
    ctx, qry = Partition(context_ratio=0.7, query_ratio=0.4).split(
        m, torch.Generator().manual_seed(0)
    )
    assert not (ctx & ~m).any() and not (qry & ~m).any()
    assert abs(ctx.sum() / m.sum() - 0.7) < 0.02
    assert abs(qry.sum() / m.sum() - 0.4) < 0.02
    assert (ctx == ctx[:, :1]).all()  # static masks -> static partition


def test_missdiff_limit_is_the_whole_mask():
    m = _masks(p=0.3)
    ctx, qry = Partition(context_ratio=1.0, query_ratio=1.0).split(
        m, torch.Generator().manual_seed(0)
    )
    assert torch.equal(ctx, m) and torch.equal(qry, m)


def test_block_partition_drops_one_observed_tile():
    m = _masks("block", k=5)
    ctx, qry = Partition(kind="block").split(m, torch.Generator().manual_seed(0))
    index = block_index(24, 24, 3)
    for i in range(m.shape[0]):
        observed = set(index[m[i, 0]].unique().tolist())
        in_ctx = set(index[ctx[i, 0]].unique().tolist())
        in_qry = set(index[qry[i, 0]].unique().tolist())
        assert in_ctx < observed and len(observed - in_ctx) == 1
        assert in_qry == observed - in_ctx
    assert not (ctx & qry).any()


def test_block_partition_query_all_and_single_tile_samples():
    m = _masks("block", k=1)
    ctx, qry = Partition(kind="block", query_all=True).split(m, torch.Generator().manual_seed(0))
    assert torch.equal(ctx, m)  # one observed tile: nothing can be dropped, context stays non-empty
    assert torch.equal(qry, m)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="context_ratio"):
        Partition(context_ratio=0.0)
    with pytest.raises(ValueError, match="bool"):
        Partition().split(torch.ones(2, 3, 4, 4), torch.Generator())


def test_inference_partition_keeps_the_training_input_density():
    """App. G.3: trained at p with context ratio r, tested at p′, the context ratio becomes
    min(1, p·r/p′), so the model sees about p·r of the grid as in training."""
    from incdyn.datasets.masks import MaskFamily
    from incdyn.models.partition import PartitionSpec, inference_partition, partition_for

    strategy = PartitionSpec(context_ratio=0.5, query_ratio=0.7)
    train = MaskFamily(p=0.8)
    same = inference_partition(strategy, train, None)
    assert same == partition_for(strategy, train) and same.context_ratio == 0.5
    sparser = inference_partition(strategy, train, MaskFamily(p=0.6))
    assert sparser.context_ratio == pytest.approx(0.8 * 0.5 / 0.6)
    assert sparser.query_ratio == 0.7  # only the context ratio moves
    denser = inference_partition(strategy, MaskFamily(p=0.2), MaskFamily(p=0.8))
    assert denser.context_ratio == pytest.approx(0.2 * 0.5 / 0.8)
    assert inference_partition(strategy, train, MaskFamily(p=0.1)).context_ratio == 1.0  # clipped
    g = torch.Generator().manual_seed(0)
    m = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(1)) < 0.6
    ctx = sparser.context(m, g)
    density = ctx.float().mean() / m.float().mean() * 0.6  # context points per grid point
    assert float(density) == pytest.approx(0.8 * 0.5, rel=0.03)
    blocks = PartitionSpec(kind="block")
    block_family = MaskFamily(kind="block", k=8)
    assert inference_partition(blocks, block_family, MaskFamily(kind="pixel", p=0.1)) == (
        partition_for(blocks, block_family)
    )  # the ratio rule is for pixel partitions only


def test_cloud_partition_hides_observed_points_under_clouds():
    m = _masks("cloud", p=0.6, scale=3.0, static=False)
    part = Partition(kind="cloud", context_ratio=0.7, scale=3.0, static=False)
    ctx, qry = part.split(m, torch.Generator().manual_seed(0))
    assert torch.equal(ctx | qry, m) and not (ctx & qry).any()
    assert abs(qry.sum() / m.sum() - 0.3) < 0.03  # the cloud covers 1 − r_ctx of the grid
    hidden = m & ~ctx
    # clouds, not pinholes: a hidden point's right neighbour is hidden far more often than
    # the 30 % an independent draw gives
    pairs = hidden[..., :-1] & m[..., 1:]
    assert (pairs & hidden[..., 1:]).sum() / pairs.sum() > 0.6
    assert not (ctx == ctx[:, :1]).all()  # per-frame masks: a fresh cloud every frame
    again = part.split(m, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], ctx) and torch.equal(again[1], qry)
    full = Partition(kind="cloud", query_all=True, scale=3.0, static=False)
    assert torch.equal(full.split(m, torch.Generator().manual_seed(0))[1], m)


def test_cloud_partition_keeps_one_context_point():
    m = torch.zeros(8, 2, 12, 12, dtype=torch.bool)
    m[:, :, 5, 5] = True  # one observed point per frame: a cloud may not hide it
    ctx, qry = Partition(kind="cloud", context_ratio=0.2, scale=4.0).split(
        m, torch.Generator().manual_seed(0)
    )
    assert torch.equal(ctx, m) and not qry.any()
