"""Multi-step sampler (App. E, Alg. 4), direct inference (Table 4), cross-distribution ratio."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from incdyn.datasets.masks import MaskFamily, sample_masks
from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition, cross_distribution_ratio
from incdyn.models.samplers.direct import direct_impute
from incdyn.models.samplers.multistep import multistep_impute
from incdyn.models.samplers.single import ensemble_impute
from incdyn.models.schedule import VPSchedule

FAMILY = MaskFamily(p=0.4)


class Oracle(nn.Module):
    """Ignores its input and returns the true fields (repeated to the batch it is called with)."""

    def __init__(self, truth: torch.Tensor):
        super().__init__()
        self.register_buffer("truth", truth)

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        return self.truth.repeat_interleave(x.shape[0] // self.truth.shape[0], dim=0)


class ContextMean(nn.Module):
    """Mean of the context's values everywhere plus a little of the input (context-dependent)."""

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // 2
        values, ctx = x[:, :c], x[:, c:]
        total = ctx.sum(dim=(2, 3, 4), keepdim=True).clamp_min(1)
        return (values.sum(dim=(2, 3, 4), keepdim=True) / total).expand_as(values) + 0.1 * values


class Recorder(ContextMean):
    """ContextMean that keeps every context mask it is shown."""

    def __init__(self):
        super().__init__()
        self.contexts: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        self.contexts.append(x[:, x.shape[1] // 2] > 0.5)
        return super().forward(x, noise_label)


def _setup(*, b: int = 3, c: int = 2, seed: int = 0):
    truth = torch.randn(b, c, 2, 8, 8, generator=torch.Generator().manual_seed(seed + 1))
    m = sample_masks(FAMILY, b, 2, 8, 8, torch.Generator().manual_seed(seed))
    return truth, torch.where(m[:, None], truth, 0.0), m


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("weight", ["zero", "t", "t2"])
def test_oracle_denoiser_recovers_the_truth(weight):
    truth, x, m = _setup()
    den = Denoiser(Oracle(truth), VPSchedule())
    imputed, spread = multistep_impute(
        den, x, m, Partition(), FAMILY, steps=6, weight=weight, k=3, generator=_gen()
    )
    assert torch.allclose(imputed, truth, atol=1e-5)
    obs = m[:, None].expand_as(x)
    assert torch.equal(imputed[obs], x[obs])
    assert spread.abs().max() < 1e-5  # every member is the truth


def test_observed_points_exactly_unchanged_and_spread():
    _, x, m = _setup()
    den = Denoiser(ContextMean(), VPSchedule())
    imputed, spread = multistep_impute(
        den, x, m, Partition(), FAMILY, steps=5, weight="t", k=4, generator=_gen()
    )
    obs = m[:, None].expand_as(x)
    assert torch.equal(imputed[obs], x[obs])
    assert torch.isfinite(imputed).all()
    assert (spread >= 0).all() and (spread[obs] == 0).all() and (spread[~obs] > 0).any()


def test_weights_differ_and_sampler_is_deterministic():
    _, x, m = _setup()
    den = Denoiser(ContextMean(), VPSchedule())

    def run(weight, seed):
        return multistep_impute(
            den, x, m, Partition(), FAMILY, steps=5, weight=weight, k=3, generator=_gen(seed)
        )[0]

    assert torch.equal(run("t2", 0), run("t2", 0))
    assert not torch.allclose(run("zero", 0), run("t2", 0), atol=1e-4)
    assert not torch.allclose(run("t2", 0), run("t2", 1), atol=1e-4)


def test_step_contexts_are_drawn_over_the_whole_grid():
    _, x, m = _setup(b=4)
    rec = Recorder()
    den = Denoiser(rec, VPSchedule())
    steps, k = 4, 3
    multistep_impute(
        den, x, m, Partition(), FAMILY, steps=steps, weight="zero", k=k, generator=_gen()
    )
    # calls: the μ₀ ensemble (B·K), one per step (B), the final ensemble (B·K)
    sizes = [c.shape[0] for c in rec.contexts]
    assert sizes == [4 * k] + [4] * steps + [4 * k]
    assert not (rec.contexts[0] & ~m.repeat_interleave(k, 0)).any()  # μ₀: subsets of M
    step_ctx = torch.cat(rec.contexts[1:-1])
    assert (step_ctx & ~m.repeat(steps, 1, 1, 1)).any()  # M′ covers unobserved points too
    assert abs(step_ctx.float().mean().item() - FAMILY.p * 0.7) < 0.08  # training marginal


def test_step_partition_sets_the_whole_grid_context_density():
    _, x, m = _setup(b=4)
    rec = Recorder()
    den = Denoiser(rec, VPSchedule())
    test_partition = Partition(context_ratio=0.3)  # e.g. rescaled for another test ratio
    multistep_impute(
        den,
        x,
        m,
        test_partition,
        FAMILY,
        steps=4,
        k=2,
        generator=_gen(),
        step_partition=Partition(context_ratio=0.9),
    )
    first = rec.contexts[0].float().sum() / m.repeat_interleave(2, 0).float().sum()
    assert abs(first.item() - 0.3) < 0.1  # μ₀: the given partition
    step_ctx = torch.cat(rec.contexts[1:])
    assert abs(step_ctx.float().mean().item() - FAMILY.p * 0.9) < 0.08  # M′: training marginal


def test_bad_arguments():
    _, x, m = _setup()
    den = Denoiser(ContextMean(), VPSchedule())
    with pytest.raises(ValueError, match="weight"):
        multistep_impute(
            den, x, m, Partition(), FAMILY, steps=2, weight="t3", k=2, generator=_gen()
        )
    with pytest.raises(ValueError, match="steps"):
        multistep_impute(den, x, m, Partition(), FAMILY, steps=0, k=2, generator=_gen())


def test_direct_inference_is_the_single_full_mask():
    _, x, m = _setup()
    rec = Recorder()
    den = Denoiser(rec, VPSchedule())
    imputed, spread = direct_impute(den, x, m, generator=_gen(5))
    assert len(rec.contexts) == 1 and torch.equal(rec.contexts[0], m)
    single, _ = ensemble_impute(den, x, m, Partition(context_ratio=1.0), k=1, generator=_gen(5))
    assert torch.equal(imputed, single)
    assert (spread == 0).all()
    ours, _ = ensemble_impute(den, x, m, Partition(context_ratio=0.5), k=4, generator=_gen(5))
    assert not torch.allclose(imputed, ours, atol=1e-3)


def test_cross_distribution_ratio():
    assert cross_distribution_ratio(0.8, 0.5, 0.6) == pytest.approx(2 / 3)  # App. G.3's example
    assert cross_distribution_ratio(0.6, 0.7, 0.6) == pytest.approx(0.7)  # same ratio: unchanged
    assert cross_distribution_ratio(0.2, 0.7, 0.8) == pytest.approx(0.175)
    assert cross_distribution_ratio(0.8, 0.7, 0.2) == 1.0  # clipped: all test observations
    with pytest.raises(ValueError, match="test_p"):
        cross_distribution_ratio(0.8, 0.7, 0.0)
    assert Partition().with_context_ratio(
        cross_distribution_ratio(0.8, 0.5, 0.6)
    ).context_ratio == pytest.approx(2 / 3)
