"""Seeded requests batched together get the answers of ``ensemble_impute`` on each alone."""

from __future__ import annotations

import torch
from conftest import perturbed_denoiser

from incdyn.datasets.masks import MaskFamily
from incdyn.models.partition import Partition
from incdyn.models.samplers.registry import SAMPLERS, SamplerPlan, impute
from incdyn.models.samplers.request import SeededRequest, impute_requests, single_step
from incdyn.models.samplers.single import ensemble_impute


def _request(i: int, k: int) -> SeededRequest:
    g = torch.Generator().manual_seed(100 + i)
    mask = (torch.rand(1, 8, 8, generator=g) < 0.5).expand(3, 8, 8).clone()
    x = torch.where(mask[None], torch.randn(2, 3, 8, 8, generator=g), 0.0)
    return SeededRequest(x=x, mask=mask, k=k, seed=i)


def test_batched_requests_equal_each_request_alone():
    den, part = perturbed_denoiser(), Partition(context_ratio=0.6)
    items = [_request(i, k) for i, k in enumerate((1, 4, 2, 5))]
    out = single_step(den, SamplerPlan(partition=part, family=MaskFamily(), max_batch=5), items)
    for it, (imputed, spread) in zip(items, out, strict=True):
        g = torch.Generator().manual_seed(it.seed)
        want, want_spread = ensemble_impute(
            den, it.x[None], it.mask[None], part, k=it.k, generator=g
        )
        assert torch.allclose(imputed, want[0], atol=1e-5)
        assert torch.allclose(spread, want_spread[0], atol=1e-5)
        observed = it.mask[None].expand_as(it.x)
        assert torch.equal(imputed[observed], it.x[observed])
        assert (spread >= 0).all() and (spread[~observed] > 0).any() == (it.k > 1)


def test_every_sampler_serves_each_request_as_alone():
    """Multi-step and direct requests go one by one, each with its own generator and K."""
    den = perturbed_denoiser()
    plan = SamplerPlan(partition=Partition(context_ratio=0.6), family=MaskFamily(p=0.5), steps=3)
    items = [_request(i, k) for i, k in enumerate((2, 3))]
    assert sorted(SAMPLERS) == ["direct", "multi", "single"]
    for kind in SAMPLERS:
        out = impute_requests(kind, den, plan, items)
        for it, (imputed, spread) in zip(items, out, strict=True):
            g = torch.Generator().manual_seed(it.seed)
            alone = SamplerPlan(**{**plan.__dict__, "k": it.k})
            want, want_spread = impute(kind, den, it.x[None], it.mask[None], alone, generator=g)
            assert torch.allclose(imputed, want[0], atol=1e-5), kind
            assert torch.allclose(spread, want_spread[0], atol=1e-5), kind
