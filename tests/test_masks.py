"""Observation-mask families: fractions, tiles, static structure, seeding."""

from __future__ import annotations

import torch

from incdyn.datasets.masks import MaskFamily, block_index, masks_for_samples, sample_masks


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pixel_fraction_and_static():
    m = sample_masks(MaskFamily(kind="pixel", p=0.2), 200, 5, 32, 32, _g())
    assert m.shape == (200, 5, 32, 32) and m.dtype == torch.bool
    assert abs(m.float().mean().item() - 0.2) < 0.01
    assert (m == m[:, :1]).all()  # static over time


def test_time_varying_pixel_masks_differ_between_frames():
    m = sample_masks(MaskFamily(kind="pixel", p=0.5, static=False), 4, 3, 16, 16, _g())
    assert not (m[:, 0] == m[:, 1]).all()


def test_every_mask_has_an_observed_point():
    m = sample_masks(MaskFamily(kind="pixel", p=0.001), 300, 2, 8, 8, _g())
    assert m.flatten(1).any(dim=1).all()


def test_block_masks_observe_exactly_k_tiles():
    fam = MaskFamily(kind="block", k=5, blocks=3)
    m = sample_masks(fam, 50, 2, 30, 27, _g())
    index = block_index(30, 27, 3)
    for sample in m[:, 0]:
        tiles = {int(i) for i in index[sample].unique()}
        assert len(tiles) == 5
        for t in tiles:  # a tile is observed entirely or not at all
            assert sample[index == t].all()


def test_masks_do_not_depend_on_sharding():
    fam = MaskFamily(kind="pixel", p=0.3)
    whole = masks_for_samples(fam, 3, "train", range(0, 10), 2, 8, 8)
    part = masks_for_samples(fam, 3, "train", range(4, 7), 2, 8, 8)
    assert torch.equal(whole[4:7], part)
    other_split = masks_for_samples(fam, 3, "test", range(4, 7), 2, 8, 8)
    assert not torch.equal(part, other_split)


def test_cloud_masks_have_the_observed_fraction_and_spatially_correlated_gaps():
    from scipy import ndimage

    from incdyn.datasets.masks import MaskFamily, sample_masks

    family = MaskFamily(kind="cloud", p=0.6, scale=3.0, static=False)
    g = torch.Generator().manual_seed(0)
    masks = sample_masks(family, 2, 3, 32, 32, g)
    assert masks.shape == (2, 3, 32, 32)
    assert (masks.flatten(2).sum(-1) == round(0.6 * 32 * 32)).all()
    assert not (masks[:, 0] == masks[:, 1]).all()  # clouds move from frame to frame
    gaps = ~masks[0, 0].numpy()
    _, pieces = ndimage.label(gaps)
    assert pieces < 0.05 * gaps.sum()  # a few large clouds, not scattered pixels
