"""Held-out points shaped like the gaps (``evaluation.holdout.shape: gaps``): their region sizes
and distances to the nearest input follow the family's gaps (where 3×3 patches do not), they
lie within the observed points at about the asked share, do not depend on sharding, and the
default spec keeps the stores' identity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import ks_2samp

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.holdout import HoldoutSpec, holdout_for_samples
from incdyn.datasets.holdout_gaps import gap_holdout
from incdyn.datasets.masks import MaskFamily, masks_for_samples
from incdyn.datasets.store import open_split
from incdyn.platform.spec import parse_spec

GAPS = HoldoutSpec(fraction=0.1, shape="gaps")
PATCHES = HoldoutSpec(fraction=0.1, patch=3)  # the units rule of cloud masks, 3×3 patches
N = 150  # one-frame 32×32 test samples per check


def _region_areas(masks: np.ndarray) -> np.ndarray:
    """Areas of the connected regions of every ``(H, W)`` mask of ``masks`` ``(n, H, W)``."""
    return np.concatenate([np.bincount(ndimage.label(m)[0].ravel())[1:] for m in masks])


def _distances(gaps: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Distance of every point of ``gaps`` ``(n, H, W)`` to the nearest point of ``inputs``."""
    return np.concatenate(
        [ndimage.distance_transform_edt(~i)[g] for g, i in zip(gaps, inputs, strict=True)]
    )


@pytest.mark.parametrize("scale", [2.0, 4.0])
def test_held_out_regions_follow_the_cloud_gaps_where_patches_do_not(scale):
    family = MaskFamily(kind="cloud", p=0.6, scale=scale)
    masks = masks_for_samples(family, 0, "test", range(N), 1, 32, 32).numpy()
    real_areas = _region_areas(~masks[:, 0])
    # how far a method must reach into a real gap: distance to the nearest observed point
    real_reach = _distances(~masks[:, 0], masks[:, 0])
    ks = {}
    for name, spec in (("gaps", GAPS), ("patches", PATCHES)):
        held = holdout_for_samples(masks, family, spec, "test", range(N))[:, 0]
        areas = ks_2samp(real_areas, _region_areas(held)).statistic
        reach = ks_2samp(real_reach, _distances(held, masks[:, 0] & ~held)).statistic
        ks[name] = areas, reach
    # two-sample KS statistics: region areas (held-out regions are donor gaps clipped by the
    # sample's own gaps, so somewhat smaller) and reach into the gaps (nearly the same law)
    assert ks["gaps"][0] < 0.45 and ks["gaps"][1] < 0.1, ks
    assert ks["patches"][0] > 0.55 and ks["patches"][1] > 0.3, ks  # the check can fail


@pytest.mark.parametrize("static", [True, False])
def test_held_out_points_are_observed_never_all_and_about_the_fraction(static):
    family = MaskFamily(kind="cloud", p=0.6, scale=3.0, static=static)
    masks = masks_for_samples(family, 1, "val", range(40), 3, 32, 32).numpy()
    held = holdout_for_samples(masks, family, GAPS, "val", range(40))
    assert not (held & ~masks).any()
    share = held.sum(axis=(2, 3)) / masks.sum(axis=(2, 3))
    assert (share >= 0.1).all() and (share < 1).all()  # whole regions up to the target, not all
    assert share.mean() < 0.2  # whole gap regions overshoot a little on a 32×32 grid
    assert (held == held[:, :1]).all() == static  # a static mask, a static hold-out
    few = masks_for_samples(MaskFamily(kind="cloud", p=0.01), 0, "test", range(20), 1, 16, 16)
    held_few = holdout_for_samples(few.numpy(), family, GAPS.model_copy(update={"fraction": 0.5}),
                                   "test", range(20))  # fmt: skip
    assert ((few.numpy() & ~held_few).sum(axis=(2, 3)) >= 1).all()  # never every observed point


@pytest.mark.parametrize("kind", ["pixel", "block", "station"])
def test_other_families_transplant_a_fresh_mask_of_their_own(kind):
    family = MaskFamily(kind=kind, p=0.5, k=5, stations=6, radius=3.0)
    masks = masks_for_samples(family, 0, "test", range(6), 2, 24, 24).numpy()
    held = holdout_for_samples(masks, family, GAPS, "test", range(6))
    assert not (held & ~masks).any() and held.any(axis=(1, 2, 3)).all()
    assert ((masks & ~held).sum(axis=(2, 3)) >= 1).all()


def test_held_out_points_do_not_depend_on_sharding():
    family = MaskFamily(kind="cloud", p=0.5, scale=2.0, static=False)
    masks = masks_for_samples(family, 0, "test", range(8), 2, 24, 24).numpy()
    whole = holdout_for_samples(masks, family, GAPS, "test", range(8))
    part = holdout_for_samples(masks[3:6], family, GAPS, "test", range(3, 6))
    np.testing.assert_array_equal(part, whole[3:6])
    other = holdout_for_samples(
        masks, family, GAPS.model_copy(update={"seed": 1}), "test", range(8)
    )
    assert not (other == whole).all()  # the seed matters


def test_own_gaps_transplant_another_frame_and_one_frame_falls_back_to_units():
    rng = np.random.default_rng(0)
    mask = rng.random((4, 24, 24)) < 0.7  # a record's own gaps, moving from frame to frame
    units_called = []

    def units(m, r):
        units_called.append(m.shape)
        return np.zeros(m.shape, bool)

    held = gap_holdout(mask, None, 0.2, (0, 3, 5), units)
    assert not units_called and not (held & ~mask).any()
    for t in range(4):  # within the gaps of another frame of the same sample
        others = np.logical_or.reduce([~mask[s] for s in range(4) if s != t])
        assert held[t].any() and not (held[t] & ~others).any()
    spec = HoldoutSpec(fraction=0.2, shape="gaps", patch=3)
    one = holdout_for_samples(mask[None, :1], None, spec, "test", range(1))[0, 0]
    assert one.any() and not (one & ~mask[0]).any()
    for i in range(0, 24, 3):  # the units rule: whole 3×3 patches of observed points
        for j in range(0, 24, 3):
            held, seen = one[i : i + 3, j : j + 3], mask[0, i : i + 3, j : j + 3]
            assert not held.any() or (held == seen).all()


def _config(holdout, family):
    return store_config(
        source="navier_stokes",
        preset="quickstart",
        params={"grid": 16, "frames": 2},
        sizes={"train": 2, "val": 2, "test": 4},
        chunk=2,
        family=family,
        seed=0,
        holdout=holdout,
    )


def test_default_spec_keeps_the_store_config_and_gaps_change_it(tmp_path):
    family = MaskFamily(kind="cloud", p=0.5, scale=2.0)
    default = _config(HoldoutSpec(), family)
    assert default["holdout"] == {"fraction": 0.1, "seed": 0, "patch": None}  # as before `shape`
    assert _config(HoldoutSpec(shape="units"), family) == default
    gaps = _config(HoldoutSpec(shape="gaps"), family)
    assert gaps["holdout"] == {**default["holdout"], "shape": "gaps"} and gaps != default
    spec = parse_spec({"name": "h", "methods": [{"name": "m"}]}, "test spec")
    assert spec.to_dict()["evaluation"]["holdout"] == default["holdout"]  # run params unchanged
    url = str(tmp_path / "gaps.zarr")
    build_store(url, gaps, progress=False, use_ray=False)  # test split in two shards of 2
    test = open_split(url, "test")
    masks = test["mask"].values
    expect = holdout_for_samples(masks, family, HoldoutSpec(shape="gaps"), "test", range(4))
    np.testing.assert_array_equal(test["holdout"].values, expect)
