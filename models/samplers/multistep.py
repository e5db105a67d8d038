"""Multi-step sampler (App. E, Alg. 4).

A deterministic DDIM reverse process on the VP schedule from ``t = 1`` to ``t_min``
whose clean-data estimate at each step is (Eq. 28)

    x̂₀ = w(t)·μ₀ + (1 − w(t))·D_θ(t, M′ ⊙ x_t, M′),   w ∈ {0, t, t²},

with ``μ₀`` the single-step ensemble estimate (Eq. 27, computed once) and ``M′`` a fresh context
mask over the whole grid with the training-time marginal (Eq. 26: an observation mask of the
family, then the partition's context draw). Observed points follow the known data (RePaint):
their ``x̂₀`` is ``x_obs``, so their ``x_t = α_t x_obs + σ_t ε`` keeps the noise ``ε`` they
started with. A final ensemble of K whole-grid masks at ``t_min`` gives the output and a spread.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Literal

import torch

from incdyn.datasets.masks import MaskFamily, sample_masks
from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition
from incdyn.models.samplers.forward import (
    MAX_NETWORK_POINTS,
    denoise_chunked,
    ensemble_stats,
    merge_observed,
)
from incdyn.models.samplers.single import ensemble_impute
from incdyn.models.schedule import VPSchedule

Weight = Literal["zero", "t", "t2"]
WEIGHTS: dict[str, Callable[[float], float]] = {
    "zero": lambda t: 0.0,  # Table 7 "w/o": the network's estimate only
    "t": lambda t: t,
    "t2": lambda t: t * t,
}


def whole_grid_contexts(
    family: MaskFamily,
    partition: Partition,
    n: int,
    shape: tuple[int, int, int],
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """``n`` context masks with the training-time marginal (Eq. 26), bool ``(n, T, H, W)``:
    a fresh observation mask of ``family``, then ``partition``'s context draw from it."""
    frames, h, w = shape
    masks = sample_masks(family, n, frames, h, w, generator).to(device)
    return partition.context(masks, generator)


def _weight_of(steps: int, k: int, weight: str) -> Callable[[float], float]:
    if steps < 1:
        raise ValueError(f"multi-step sampler needs steps >= 1, got {steps}")
    if k < 1:
        raise ValueError(f"ensemble size k={k} must be >= 1")
    if weight not in WEIGHTS:
        raise ValueError(f"weight {weight!r} is not one of {sorted(WEIGHTS)}")
    return WEIGHTS[weight]


@torch.no_grad()
def multistep_impute(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    partition: Partition,
    family: MaskFamily,
    *,
    steps: int,
    weight: Weight = "t",
    k: int = 10,
    generator: torch.Generator,
    mu0: torch.Tensor | None = None,
    step_partition: Partition | None = None,
    max_batch: int = 256,
    max_points: int = MAX_NETWORK_POINTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Impute ``(B, C, T, H, W)`` fields by ``steps`` reverse steps; returns ``(imputed, spread)``.

    Args:
        denoiser: trained ``D_θ``.
        x_obs: observed field (values at unobserved points are ignored).
        mask: observation mask, bool ``(B, T, H, W)``.
        partition: the partition strategy of the context masks of ``μ₀`` (and of ``M′``
            unless ``step_partition`` is given).
        family: the observation-mask family (``M′`` is drawn from it over the whole grid).
        steps: reverse DDIM steps from ``t = 1`` to ``t_min`` (uniform in ``t``; release: 200).
        weight: ``w(t)`` of Eq. 28: ``"zero"`` (0), ``"t"`` or ``"t2"`` (t²).
        k: ensemble size of ``μ₀`` and of the final step at ``t_min``.
        generator: source of every mask and of the noise.
        mu0: precomputed single-step ensemble estimate ``(B, C, T, H, W)`` (default: computed
            here with ``k`` context masks of ``partition``).
        step_partition: the training partition, when ``partition`` differs from it
            (cross-distribution, App. G.3: the test context ratio is rescaled, but ``M′`` must
            keep the training-time marginal ``family`` + training partition).
        max_batch: largest network batch.
        max_points: most grid points (rows × H × W) in one network batch.
    Returns:
        imputed: observed points equal ``x_obs``; elsewhere the final estimate.
        spread: standard deviation of the final ensemble's members (0 at observed points).
    """
    w_of = _weight_of(steps, k, weight)
    step_partition = partition if step_partition is None else step_partition
    b, _, frames, h, w = x_obs.shape
    observed = mask.unsqueeze(1).expand_as(x_obs)
    known = torch.where(observed, x_obs, torch.zeros_like(x_obs))
    if mu0 is None:
        mu0, _ = ensemble_impute(
            denoiser,
            known,
            mask,
            partition,
            k=k,
            generator=generator,
            max_batch=max_batch,
            max_points=max_points,
        )
    times = torch.linspace(1.0, denoiser.schedule.t_min, steps + 1, dtype=torch.float64).tolist()
    x = _reverse_steps(
        denoiser,
        x_obs,
        observed,
        known,
        mu0,
        times,
        w_of,
        family,
        step_partition,
        generator=generator,
        max_batch=max_batch,
        max_points=max_points,
    )
    # Final ensemble step at t_min over K whole-grid context masks.
    t_end, w_end = times[-1], w_of(times[-1])
    ctx = whole_grid_contexts(family, step_partition, b * k, (frames, h, w), generator, x.device)
    preds = denoise_chunked(
        denoiser, x.repeat_interleave(k, dim=0), ctx, t_end, max_batch, max_points
    )
    mean, std = ensemble_stats(preds.view(b, k, *x_obs.shape[1:]))
    return merge_observed(x_obs, mask, torch.lerp(mean, mu0, w_end), (1.0 - w_end) * std)


def _coeffs(schedule: VPSchedule, t: float) -> tuple[float, float]:
    """``(α_t, σ_t)`` of the schedule at ``t``."""
    tt = torch.tensor(t, dtype=torch.float64)
    return float(schedule.alpha(tt)), float(schedule.sigma(tt))


def _reverse_steps(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    observed: torch.Tensor,
    known: torch.Tensor,
    mu0: torch.Tensor,
    times: list[float],
    w_of: Callable[[float], float],
    family: MaskFamily,
    partition: Partition,
    *,
    generator: torch.Generator,
    max_batch: int,
    max_points: int,
) -> torch.Tensor:
    """The reverse DDIM steps from ``times[0] = 1`` to ``times[-1] = t_min``; returns ``x`` at
    ``t_min``, ``(B, C, T, H, W)``. ``observed`` is the mask broadcast to the fields and
    ``known`` the fields with zeros at unobserved points; each step draws a fresh whole-grid
    context ``M′`` of ``family`` and ``partition`` (Eq. 26)."""
    schedule = denoiser.schedule
    b, _, frames, h, w = x_obs.shape
    device = x_obs.device
    eps = torch.randn(x_obs.shape, generator=generator, device=device, dtype=x_obs.dtype)
    a, s = _coeffs(schedule, times[0])
    x = a * known + s * eps  # pure noise (σ(1) ≈ 1) at unobserved points
    for t, t_next in itertools.pairwise(times):
        ctx = whole_grid_contexts(family, partition, b, (frames, h, w), generator, device)
        d = denoise_chunked(denoiser, x, ctx, t, max_batch, max_points)
        x0 = torch.lerp(d, mu0, w_of(t))  # Eq. 28: w·μ₀ + (1 − w)·D
        x0 = torch.where(observed, x_obs, x0)
        a, s = _coeffs(schedule, t)
        a_next, s_next = _coeffs(schedule, t_next)
        eps_hat = (x - a * x0) / s  # DDIM (η = 0): keep the implied noise
        x = a_next * x0 + s_next * eps_hat
        x = torch.where(observed, a_next * x_obs + s_next * eps, x)  # RePaint: known data
    return x
