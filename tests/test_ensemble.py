"""Single-step ensemble (Sec. 3.3): batching, observed points, spread."""

from __future__ import annotations

import torch
from torch import nn

from incdyn.datasets.masks import MaskFamily, sample_masks
from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition
from incdyn.models.samplers.single import ensemble_impute
from incdyn.models.schedule import VPSchedule


class ContextMean(nn.Module):
    """Predicts, everywhere, the mean of the values the context shows (depends on the context)."""

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // 2
        values, ctx = x[:, :c], x[:, c:]
        mean = values.sum(dim=(2, 3, 4), keepdim=True) / ctx.sum(
            dim=(2, 3, 4), keepdim=True
        ).clamp_min(1)
        return mean.expand_as(values) + 0.01 * values


def _setup(b: int = 3):
    m = sample_masks(MaskFamily(p=0.4), b, 2, 8, 8, torch.Generator().manual_seed(0))
    x = torch.randn(b, 2, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    return Denoiser(ContextMean(), VPSchedule()), torch.where(m[:, None], x, 0.0), m


def test_batched_ensemble_equals_loop_over_masks():
    den, x, m = _setup()
    part, k = Partition(context_ratio=0.6), 5
    imputed, spread = ensemble_impute(
        den, x, m, part, k=k, generator=torch.Generator().manual_seed(7), max_batch=4
    )
    # the same draws, evaluated one mask at a time
    g = torch.Generator().manual_seed(7)
    ctx = part.context(m.repeat_interleave(k, 0), g)
    xr = x.repeat_interleave(k, 0)
    eps = torch.randn(xr.shape, generator=g)
    s = den.schedule
    t = torch.tensor([s.t_min])
    x_t = s.alpha(t) * xr + s.sigma(t) * eps
    preds = torch.stack([den(x_t[i : i + 1], ctx[i : i + 1], t)[0] for i in range(x_t.shape[0])])
    preds = preds.view(x.shape[0], k, *x.shape[1:])
    expected = torch.where(m[:, None], x, preds.mean(1))
    assert torch.allclose(imputed, expected, atol=1e-6)
    hidden = ~m[:, None].expand_as(x)
    assert torch.allclose(spread[hidden], preds.std(1, unbiased=False)[hidden], atol=1e-6)


def test_observed_points_unchanged_and_spread_nonnegative():
    den, x, m = _setup()
    imputed, spread = ensemble_impute(
        den, x, m, Partition(), k=4, generator=torch.Generator().manual_seed(0)
    )
    obs = m[:, None].expand_as(x)
    assert torch.equal(imputed[obs], x[obs])
    assert (spread >= 0).all() and (spread[obs] == 0).all()
    assert (spread[~obs] > 0).any()


def test_full_context_makes_every_member_identical_up_to_noise():
    den, x, m = _setup()
    _, full = ensemble_impute(
        den, x, m, Partition(context_ratio=1.0), k=6, generator=torch.Generator().manual_seed(0)
    )
    _, half = ensemble_impute(
        den, x, m, Partition(context_ratio=0.5), k=6, generator=torch.Generator().manual_seed(0)
    )
    sigma = float(den.schedule.sigma(torch.tensor(den.schedule.t_min)))
    assert full.max() < sigma  # members differ only by the δ-noise (σ_δ ≈ 0.01)
    assert half.max() > 10 * full.max()  # different contexts, different predictions


def test_members_are_the_ensemble_and_independent_draws():
    from incdyn.models.samplers.members import sampler_members
    from incdyn.models.samplers.multistep import multistep_impute
    from incdyn.models.samplers.registry import SamplerPlan

    den, x, m = _setup()
    plan = SamplerPlan(partition=Partition(context_ratio=0.6), family=MaskFamily(p=0.4), k=3,
                       steps=2, max_batch=4)  # fmt: skip
    members = sampler_members(
        "single", den, x, m, plan, members=5, generator=torch.Generator().manual_seed(7)
    )
    imputed, spread = ensemble_impute(
        den, x, m, plan.partition, k=5, generator=torch.Generator().manual_seed(7), max_batch=4
    )
    hidden = ~m[:, None].expand_as(x)
    assert members.shape == (3, 5, *x.shape[1:])
    assert torch.equal(members.mean(1)[hidden], imputed[hidden])  # the same draws, bit for bit
    assert torch.equal(members.std(1, unbiased=False)[hidden], spread[hidden])
    runs = sampler_members(
        "multi", den, x, m, plan, members=2, generator=torch.Generator().manual_seed(3)
    )
    first, _ = multistep_impute(den, x, m, plan.partition, plan.family, steps=2, k=3,
                                generator=torch.Generator().manual_seed(3), max_batch=4)  # fmt: skip
    assert torch.equal(runs[:, 0], first)  # a member is one whole run of Alg. 4
    assert not torch.equal(runs[:, 0][hidden], runs[:, 1][hidden])  # runs draw independently
