"""Held-out observed points: a seeded share of each val/test sample's observations withheld from
the model, so that every method can be scored — and every choice made — without ground truth.

Points are withheld in whole *units* that follow the observation mask's structure: single points
for pixel masks, whole observed tiles for block masks, whole stations (connected observed
regions) for station masks, and spatially clumped square patches for cloud masks and for a
data set's own gaps (``structure=None``). A static mask gets a static hold-out (the same spatial
units in every frame). Of a sample's ``n`` units, ``round(fraction · n)`` are withheld, at least
one and never all, so the model always keeps some input.

``shape: gaps`` withholds observed points under a transplanted gap pattern instead (a fresh mask
of the family, or another frame of a data set's own gaps; :mod:`incdyn.datasets.holdout_gaps`),
so that held-out scores are made on gaps of the real gaps' size. The default, ``units``, is
dumped without its ``shape`` key: stores and runs made before it keep their identity.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_serializer
from scipy import ndimage

from incdyn.datasets.holdout_gaps import gap_holdout
from incdyn.datasets.masks import MaskFamily, block_index


class HoldoutSpec(BaseModel):
    """Which observed points of val/test samples are withheld for truth-free evaluation.

    Attributes:
        fraction: share of a sample's observed units withheld, in (0, 0.5].
        seed: seed of the draw (with the split and the sample's index).
        patch: side in grid points of the clumped patches used for cloud masks and a data set's
            own gaps; ``None`` takes an eighth of the shorter grid side (at least 2).
        shape: ``units`` (the units above) or ``gaps``: the observed points under a
            transplanted gap pattern of the same family (any family; for a data set's own gaps
            another frame's), whole gap regions until ``fraction`` is reached.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(0.1, gt=0.0, le=0.5)  # share of observed units withheld
    seed: int = 0  # seed of the draw, combined with split and sample index
    patch: int | None = Field(None, ge=1)  # clumped-patch side (cloud masks, real gaps)
    shape: Literal["units", "gaps"] = "units"  # gaps: transplanted gap patterns of the family

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """The default ``shape`` stays out of the dump: a store's identity and a run's params
        are those of a spec written before ``shape`` existed."""
        out = handler(self)
        if self.shape == "units":
            out.pop("shape", None)
        return out


def _patch_labels(h: int, w: int, patch: int) -> np.ndarray:
    rows = np.arange(h)[:, None] // patch
    cols = np.arange(w)[None, :] // patch
    return rows * (-(-w // patch)) + cols


def unit_labels(
    mask2d: np.ndarray, family: MaskFamily | None, patch: int | None = None
) -> np.ndarray:
    """Unit number of every observed point of a spatial mask ``(H, W)``; -1 where unobserved."""
    h, w = mask2d.shape
    kind = family.kind if family is not None else "patch"
    if kind == "pixel":
        labels = np.arange(h * w).reshape(h, w)
    elif kind == "block":
        labels = block_index(h, w, family.blocks).numpy()
    elif kind == "station":
        labels, _ = ndimage.label(mask2d)  # overlapping disks make one station
    else:
        labels = _patch_labels(h, w, patch or max(2, min(h, w) // 8))
    return np.where(mask2d, labels, -1)


def units_withheld(n: int, fraction: float) -> int:
    """How many of a sample's ``n`` observed units are withheld: ``round(fraction · n)``, at
    least one and never all (``n ≥ 2``); e.g. a tenth of 8 tiles is 1 tile, 12.5 %."""
    return int(np.clip(round(fraction * n), 1, n - 1))


def _withhold(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    units = np.unique(labels[labels >= 0])
    if len(units) < 2:
        return np.zeros(labels.shape, bool)
    k = units_withheld(len(units), fraction)
    chosen = rng.permutation(units)[:k]
    return np.isin(labels, chosen)


def holdout_mask(
    mask: np.ndarray,
    family: MaskFamily | None,
    spec: HoldoutSpec,
    rng: np.random.Generator,
) -> np.ndarray:
    """Held-out points of one sample: bool ``(T, H, W)``, a subset of ``mask`` ``(T, H, W)``.

    ``family`` is the observation family whose structure the units follow, or ``None`` for a
    data set's own gaps (clumped patches).
    """
    static = bool((mask == mask[:1]).all())
    if static:
        labels = unit_labels(mask[0], family, spec.patch)
        return np.broadcast_to(_withhold(labels, spec.fraction, rng), mask.shape).copy()
    labels = np.stack([unit_labels(m, family, spec.patch) for m in mask])
    span = int(labels.max()) + 1
    offsets = np.arange(mask.shape[0])[:, None, None] * span
    return _withhold(np.where(labels >= 0, labels + offsets, -1), spec.fraction, rng) & mask


def holdout_for_samples(
    masks: np.ndarray,
    family: MaskFamily | None,
    spec: HoldoutSpec,
    split: str,
    indices: range,
) -> np.ndarray:
    """Held-out points of samples ``indices`` of ``split`` (masks ``(n, T, H, W)``), each drawn
    from a generator seeded by ``(spec.seed, split, index)``: independent of sharding."""
    split_id = {"train": 1, "val": 2, "test": 3}[split]
    out = np.zeros(masks.shape, bool)

    def units(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return holdout_mask(mask, family, spec, rng)

    for j, i in enumerate(indices):
        if spec.shape == "gaps":
            out[j] = gap_holdout(masks[j], family, spec.fraction, (spec.seed, split_id, i), units)
            continue
        rng = np.random.default_rng([spec.seed, split_id, i])
        out[j] = holdout_mask(masks[j], family, spec, rng)
    return out


def input_mask(mask: np.ndarray, holdout: np.ndarray | None) -> np.ndarray:
    """The observations a held-out pass may use: ``mask`` without the held-out points."""
    return mask if holdout is None else mask & ~holdout
