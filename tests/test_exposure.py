"""Principle-1 exposure audit (Theorem 1): exact enumeration, sampling, closed form, flags."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from incdyn.datasets.masks import MaskFamily, blocks_to_mask
from incdyn.models.exposure import _block_masks, _exact_exposure, audit, pixel_exposure
from incdyn.models.partition import Partition, PartitionSpec, partition_for
from incdyn.platform.evaluation.exposure_view import exposure_figure, exposure_summary

BLOCK_5_9 = MaskFamily(kind="block", k=5, blocks=3)
PIXEL_PART = Partition(kind="pixel", context_ratio=0.7, query_ratio=0.7)
BLOCK_PART = Partition(kind="block", drop_blocks=1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _audit(family, partition, *, h=24, w=24, samples=400, seed=0, **kw):
    return audit(family, partition, frames=4, h=h, w=w, samples=samples, generator=_gen(seed), **kw)


def test_pixel_partition_on_block_masks_has_zero_exposure():
    report = _audit(BLOCK_5_9, PIXEL_PART)
    assert report.method == "exact"
    # a pixel context touches every observed tile, so M is known: the 4 unobserved tiles are
    # never queried; every point is unobserved in some context
    assert report.has_zero_exposure and report.minimum == 0.0 and report.zero_fraction == 1.0
    # P(i ∈ qry | i ∉ ctx) = (5/9 · 0.3 · 0.7) / (4/9 + 5/9 · 0.3), unchanged by the zeros
    expected = (5 / 9 * 0.3 * 0.7) / (4 / 9 + 5 / 9 * 0.3)
    assert abs(report.mean_map.mean().item() - expected) < 0.02
    zero_share = (4 / 9) / (4 / 9 + 5 / 9 * 0.3)  # of the contexts leaving a point outside
    assert abs(report.zero_mass - zero_share) < 0.03
    assert (report.zero_rate_map - zero_share).abs().max() < 0.2
    assert "ZERO EXPOSURE" in exposure_summary(report)


def test_exact_exposure_of_one_context():
    h = w = 12
    chosen = torch.zeros(9, dtype=torch.bool)
    chosen[[0, 2, 4, 6, 8]] = True
    m = blocks_to_mask(chosen, h, w, 3).flatten()
    masks = _block_masks(BLOCK_5_9, h, w)
    assert masks.shape == (126, h * w)
    # pixel context: M is determined, the unobserved tiles are never queried
    ctx = m & (torch.rand(h * w, generator=_gen()) < 0.7)
    e = _exact_exposure(ctx[None], masks, PIXEL_PART, h, w)[0]
    assert (e[~ctx & ~m] == 0).all()
    assert torch.allclose(e[~ctx & m], torch.tensor(0.7, dtype=e.dtype))
    # block context (tile 8 dropped): any of the 5 unseen tiles was the dropped one
    ctx = m & (blocks_to_mask(torch.arange(9) != 8, h, w, 3).flatten())
    e = _exact_exposure(ctx[None], masks, BLOCK_PART, h, w)[0]
    assert torch.allclose(e[~ctx], torch.tensor(0.2, dtype=e.dtype))
    e = _exact_exposure(ctx[None], masks, Partition(kind="block", query_all=True), h, w)[0]
    assert torch.allclose(e[~ctx], torch.tensor(0.2, dtype=e.dtype))  # query_all: M's tiles


def test_block_partition_on_block_masks_is_positive_and_uniform():
    report = _audit(BLOCK_5_9, BLOCK_PART)
    assert not report.has_zero_exposure and report.zero_mass == 0.0
    # the context shows 4 tiles; each of the 5 others is the dropped one with probability 1/5
    assert torch.allclose(report.min_map, torch.tensor(0.2), atol=1e-6)
    assert torch.allclose(report.mean_map, torch.tensor(0.2), atol=1e-6)
    assert report.spread == pytest.approx(1.0, abs=1e-5)
    assert "positive probability" in exposure_summary(report)


def test_pixel_partition_on_pixel_masks_matches_closed_form():
    family = MaskFamily(kind="pixel", p=0.5)
    report = _audit(family, PIXEL_PART, h=16, w=16, samples=6000)
    assert report.method == "mc" and not report.has_zero_exposure
    closed = pixel_exposure(0.5, 0.7, 0.7)  # 0.7 · 0.5 · 0.3 / 0.65 ≈ 0.1615
    assert abs(report.mean_map.mean().item() - closed) < 0.005  # ~1.2M point draws
    assert (report.mean_map - closed).abs().max() < 0.05  # every point, ~4400 draws each
    assert report.minimum > 0.5 * closed and report.variation < 0.15  # positive, near-uniform


def test_missdiff_pixel_partition_queries_nothing_outside_its_context():
    missdiff = Partition(kind="pixel", context_ratio=1.0, query_ratio=1.0)
    assert pixel_exposure(0.3, 1.0, 1.0) == 0.0
    report = _audit(MaskFamily(kind="pixel", p=0.3), missdiff, h=8, w=8, samples=800)
    assert report.zero_fraction == 1.0 and report.zero_mass == 1.0


@pytest.mark.parametrize("partition", [PIXEL_PART, BLOCK_PART], ids=["pixel", "block"])
def test_sampling_agrees_with_exact_enumeration_on_block_masks(partition):
    exact = _audit(BLOCK_5_9, partition, h=12, w=12, samples=4000, method="exact")
    mc = _audit(BLOCK_5_9, partition, h=12, w=12, samples=20000, seed=1, method="mc")
    assert exact.has_zero_exposure == mc.has_zero_exposure
    assert torch.equal(exact.zero_map, mc.zero_map)
    assert abs(exact.zero_mass - mc.zero_mass) < 0.02
    assert (exact.mean_map - mc.mean_map).abs().max() < 0.04
    if not exact.has_zero_exposure:
        assert (mc.min_map > 0.25 * exact.min_map).all()  # the sampled minimum is noisy


def test_zero_exposure_report_flags_the_dimensions_and_draws_a_figure():
    # block partition on pixel masks: a kept tile shows all of M there, so its unobserved
    # points are never queried
    report = _audit(MaskFamily(kind="pixel", p=0.3), BLOCK_PART, h=12, w=12, samples=3000)
    assert report.has_zero_exposure
    assert torch.equal(report.zero_map, report.min_map <= 1e-12)
    assert report.zero_map.shape == (12, 12)
    fig = exposure_figure(report)
    assert isinstance(fig, Figure) and len(fig.axes) >= 2


def test_per_frame_masks_and_bad_arguments():
    per_frame = MaskFamily(kind="block", k=5, static=False)
    report = _audit(per_frame, Partition(kind="block", static=False), h=9, w=9, samples=200)
    assert report.min_map.shape == (9, 9) and not report.has_zero_exposure
    with pytest.raises(ValueError, match="static"):
        _audit(per_frame, BLOCK_PART)
    with pytest.raises(ValueError, match="mc"):
        _audit(MaskFamily(kind="pixel"), PIXEL_PART, method="exact")


def test_cloud_masks_refuse_the_pixel_partition_and_accept_the_cloud_one():
    # clouds of correlation length 2 on a 12×12 grid, half of it observed, a fresh one per
    # frame: a pixel context leaves whole tiles empty only where M is empty there, so those
    # points are never queried; a cloud-shaped query reaches them (Principle 1)
    family = MaskFamily(kind="cloud", p=0.5, scale=2.0, static=False)
    verdicts = {}
    for kind in ("pixel", "cloud"):
        part = partition_for(PartitionSpec(kind=kind, context_ratio=0.7), family)
        report = _audit(family, part, h=12, w=12, samples=2000, max_samples=12000)
        verdicts[kind] = report
    assert verdicts["pixel"].zero_fraction > 0.5
    assert not verdicts["cloud"].has_zero_exposure and verdicts["cloud"].minimum > 0.0
    summary = exposure_summary(verdicts["cloud"])
    assert "cloud p=0.5 scale=2 per frame masks, cloud r_ctx=0.7 partition" in summary
    assert "block" not in summary


def test_audit_of_a_tiled_record_uses_the_tile_and_the_window(monkeypatch):
    # a tiled xarray record is audited on one tile × one window (the samples the model sees),
    # an untiled one (patch 0) on the default grid; the spec needs no data to be audited
    from incdyn.platform.evaluation import audit as audit_module
    from incdyn.platform.spec import load_spec

    seen = []
    real = audit_module.audit

    def spy(family, partition, *, frames, h, w, samples, generator):
        seen.append((frames, h, w))
        return real(family, partition, frames=frames, h=h, w=w, samples=64, generator=generator)

    monkeypatch.setattr(audit_module, "audit", spy)
    spec = load_spec("experiments/real/ncep_air.yaml")
    reports = audit_module.audit_spec(spec)
    assert set(seen) == {(4, 24, 24)}
    assert all(r.min_map.shape == (24, 24) for r in reports.values())
    seen.clear()
    audit_module.audit_spec(load_spec("experiments/real/ncep_air.yaml", ["data.params.patch=0"]))
    assert set(seen) == {(4, 32, 32)}
