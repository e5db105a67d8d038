"""Chunking of the K×B network batch by rows and by grid points: the bounds hold, the number of
forwards is the least they allow, and the chunked ensembles equal the unchunked ones."""

from __future__ import annotations

import pytest
import torch
from conftest import perturbed_denoiser
from pydantic import ValidationError

from incdyn.datasets.masks import MaskFamily
from incdyn.models.partition import Partition
from incdyn.models.samplers.forward import MAX_NETWORK_POINTS, chunk_rows, denoise_chunked
from incdyn.models.samplers.multistep import multistep_impute
from incdyn.models.samplers.registry import SamplerPlan
from incdyn.models.samplers.request import SeededRequest, single_step
from incdyn.models.samplers.single import ensemble_impute
from incdyn.platform.spec.schema import EvaluationSpec

UNBOUNDED = 2**62
GRID = 8


@pytest.mark.parametrize("rows", [1, 5, 16, 17, 80])
@pytest.mark.parametrize("points_per_row", [1, 64, 1000])
@pytest.mark.parametrize("max_batch", [1, 3, 256])
@pytest.mark.parametrize("max_points", [1, 100, 4096])
def test_chunk_rows_keeps_the_bounds_in_the_fewest_forwards(
    rows, points_per_row, max_batch, max_points
):
    size = chunk_rows(rows, points_per_row, max_batch, max_points)
    assert 1 <= size <= max(rows, 1)
    assert size <= max_batch
    assert size == 1 or size * points_per_row <= max_points
    # brute force: the fewest forwards any allowed chunk size gives
    allowed = [
        s
        for s in range(1, rows + 1)
        if s <= max_batch and (s == 1 or s * points_per_row <= max_points)
    ]
    assert -(-rows // size) == min(-(-rows // s) for s in allowed)


def test_chunk_rows_refuses_bounds_below_one():
    with pytest.raises(ValueError, match="max_batch"):
        chunk_rows(4, 64, 0, 100)
    with pytest.raises(ValueError, match="max_points"):
        chunk_rows(4, 64, 4, 0)


def _batch(b: int = 3):
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(b, 1, GRID, GRID, generator=g) < 0.5).expand(b, 3, GRID, GRID).clone()
    return torch.where(mask[:, None], torch.randn(b, 2, 3, GRID, GRID, generator=g), 0.0), mask


def _count_forwards(den) -> list[int]:
    """Rows of every network forward of ``den`` from now on."""
    seen: list[int] = []
    den.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    return seen


def test_denoise_chunked_splits_by_points_and_equals_one_forward():
    den = perturbed_denoiser()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 2, 3, GRID, GRID, generator=g)
    ctx = torch.rand(10, 3, GRID, GRID, generator=g) < 0.5
    whole = denoise_chunked(den, x, ctx, 0.01, 256, UNBOUNDED)
    seen = _count_forwards(den)
    chunked = denoise_chunked(den, x, ctx, 0.01, 256, 3 * GRID * GRID)  # 3 rows per forward
    assert seen == [3, 3, 3, 1]
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_ensemble_chunked_by_points_equals_unchunked():
    den, (x, mask) = perturbed_denoiser(), _batch()
    part = Partition(context_ratio=0.6)

    def run(max_points):
        g = torch.Generator().manual_seed(7)
        return ensemble_impute(den, x, mask, part, k=5, generator=g, max_points=max_points)

    whole = run(UNBOUNDED)
    seen = _count_forwards(den)
    chunked = run(2 * GRID * GRID)  # 15 rows in forwards of 2
    assert max(seen) == 2 and sum(seen) == 15
    for a, b in zip(chunked, whole, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_multistep_and_requests_chunked_by_points_equal_unchunked():
    den, (x, mask) = perturbed_denoiser(), _batch(2)
    part, family = Partition(context_ratio=0.6), MaskFamily()

    def multi(max_points):
        g = torch.Generator().manual_seed(3)
        return multistep_impute(den, x, mask, part, family, steps=2, k=3, generator=g,
                                max_points=max_points)  # fmt: skip

    for a, b in zip(multi(GRID * GRID), multi(UNBOUNDED), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    items = [SeededRequest(x=x[i], mask=mask[i], k=4, seed=i) for i in range(2)]

    def served(max_points):
        plan = SamplerPlan(partition=part, family=family, max_points=max_points)
        return single_step(den, plan, items)

    for (a, sa), (b, sb) in zip(served(3 * GRID * GRID), served(UNBOUNDED), strict=True):
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(sa, sb, atol=1e-5)


def test_spec_default_is_the_samplers_and_refuses_zero():
    assert EvaluationSpec().max_network_points == MAX_NETWORK_POINTS
    with pytest.raises(ValidationError, match="max_network_points"):
        EvaluationSpec(max_network_points=0)
