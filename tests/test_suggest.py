"""Choosing where to observe in one window, through a real (tiny) denoiser's ensemble."""

from __future__ import annotations

import torch
from conftest import perturbed_denoiser

from incdyn.datasets.masks import MaskFamily
from incdyn.models.partition import Partition
from incdyn.models.samplers.registry import SamplerPlan
from incdyn.platform.suggest.window import UnitRequest, suggest_window


def _window(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 16, 16, generator=g)
    mask = torch.rand(3, 16, 16, generator=g) < 0.3
    domain = torch.ones(16, 16, dtype=torch.bool)
    domain[:, :3] = False  # land on the left
    return torch.where(mask[None], x, torch.zeros_like(x)), mask, domain


PLAN = SamplerPlan(partition=Partition(context_ratio=0.7), family=MaskFamily(p=0.3), k=8)


def _suggest(request: UnitRequest, seed: int = 1):
    x, mask, domain = _window()
    return (
        suggest_window(
            perturbed_denoiser(),
            PLAN,
            x,
            mask,
            request,
            domain=domain,
            generator=torch.Generator().manual_seed(seed),
        ),
        mask,
        domain,
    )


def test_picks_are_unobserved_domain_points_ranked_by_what_they_remove():
    out, mask, domain = _suggest(UnitRequest(frame=1, budget=5))
    where = [(p["y"], p["x"]) for p in out.picks]
    assert len(set(where)) == 5
    assert all(domain[y, x] and not mask[1, y, x] for y, x in where)
    remaining = [p["remaining"] for p in out.picks]
    assert remaining == sorted(remaining, reverse=True) and remaining[0] < out.total
    removed = sum(p["reduction"] for p in out.picks)
    assert abs(out.total - remaining[-1] - removed) < 1e-6 * out.total
    assert (out.spread[mask[1]] == 0).all() and (out.spread[~domain] == 0).all()
    assert out.members.shape == (8, 2, 3, 16, 16)
    again, _, _ = _suggest(UnitRequest(frame=1, budget=5))
    assert again.picks == out.picks  # the same generator seed gives the same choice


def test_variance_rule_first_pick_removes_at_least_the_spread_rules():
    best, _, _ = _suggest(UnitRequest(frame=0, budget=1, unit="tile", tile=4))
    spread, _, _ = _suggest(UnitRequest(frame=0, budget=1, unit="tile", tile=4, rule="spread"))
    assert best.picks[0]["reduction"] >= spread.picks[0]["reduction"]
    assert set(best.picks[0]) >= {"y0", "x0", "y1", "x1", "reduction", "remaining", "rank"}
