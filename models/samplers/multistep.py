"""Multi-step sampler (App. E, Alg. 4), direct inference (App. G.2, Table 4) and the
cross-distribution context ratio (App. G.3).

Multi-step: a deterministic DDIM reverse process on the VP schedule from ``t = 1`` to ``t_min``
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
from incdyn.models.samplers.single import ensemble_impute

Weight = Literal["zero", "t", "t2"]
WEIGHTS: dict[str, Callable[[float], float]] = {
    "zero": lambda t: 0.0,  # Table 7 "w/o": the network's estimate only
    "t": lambda t: t,
    "t2": lambda t: t * t,
}


def _denoise(
    denoiser: Denoiser, x_t: torch.Tensor, ctx: torch.Tensor, t: float, max_batch: int
) -> torch.Tensor:
    """``D_θ(t, ctx ⊙ x_t, ctx)`` for a batch, in chunks of at most ``max_batch``."""
    tt = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=x_t.dtype)
    return torch.cat(
        [
            denoiser(x_t[i : i + max_batch], ctx[i : i + max_batch], tt[i : i + max_batch])
            for i in range(0, x_t.shape[0], max_batch)
        ]
    )


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
    Returns:
        imputed: observed points equal ``x_obs``; elsewhere the final estimate.
        spread: standard deviation of the final ensemble's members (0 at observed points).
    """
    if steps < 1:
        raise ValueError(f"multi-step sampler needs steps >= 1, got {steps}")
    if k < 1:
        raise ValueError(f"ensemble size k={k} must be >= 1")
    if weight not in WEIGHTS:
        raise ValueError(f"weight {weight!r} is not one of {sorted(WEIGHTS)}")
    w_of = WEIGHTS[weight]
    step_partition = partition if step_partition is None else step_partition
    schedule = denoiser.schedule
    b, _, frames, h, w = x_obs.shape
    device, dtype = x_obs.device, x_obs.dtype
    observed = mask.unsqueeze(1).expand_as(x_obs)
    known = torch.where(observed, x_obs, torch.zeros_like(x_obs))
    if mu0 is None:
        mu0, _ = ensemble_impute(
            denoiser, known, mask, partition, k=k, generator=generator, max_batch=max_batch
        )

    def coeffs(t: float) -> tuple[float, float]:
        tt = torch.tensor(t, dtype=torch.float64)
        return float(schedule.alpha(tt)), float(schedule.sigma(tt))

    times = torch.linspace(1.0, schedule.t_min, steps + 1, dtype=torch.float64).tolist()
    eps = torch.randn(x_obs.shape, generator=generator, device=device, dtype=dtype)
    a, s = coeffs(times[0])
    x = a * known + s * eps  # pure noise (σ(1) ≈ 1) at unobserved points
    for t, t_next in itertools.pairwise(times):
        ctx = whole_grid_contexts(family, step_partition, b, (frames, h, w), generator, device)
        d = _denoise(denoiser, x, ctx, t, max_batch)
        x0 = torch.lerp(d, mu0, w_of(t))  # Eq. 28: w·μ₀ + (1 − w)·D
        x0 = torch.where(observed, x_obs, x0)
        a, s = coeffs(t)
        a_next, s_next = coeffs(t_next)
        eps_hat = (x - a * x0) / s  # DDIM (η = 0): keep the implied noise
        x = a_next * x0 + s_next * eps_hat
        x = torch.where(observed, a_next * x_obs + s_next * eps, x)  # RePaint: known data

    # Final ensemble step at t_min over K whole-grid context masks.
    t_end = times[-1]
    ctx = whole_grid_contexts(family, step_partition, b * k, (frames, h, w), generator, device)
    preds = _denoise(denoiser, x.repeat_interleave(k, dim=0), ctx, t_end, max_batch)
    preds = preds.view(b, k, *x_obs.shape[1:])
    w_end = w_of(t_end)
    x0 = torch.lerp(preds.mean(dim=1), mu0, w_end)
    spread = (1.0 - w_end) * preds.std(dim=1, unbiased=False)
    imputed = torch.where(observed, x_obs, x0)
    spread = torch.where(observed, torch.zeros_like(spread), spread)
    return imputed, spread


@torch.no_grad()
def direct_impute(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    *,
    generator: torch.Generator,
    t: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Direct inference ``D_θ(δ, M ⊙ x_δ, M)`` with the full observation mask as context
    (AmbientDiff's way; the "M_ctx = M" row of Table 4). Shapes as :func:`multistep_impute`;
    the spread is 0 everywhere (one network call, no ensemble)."""
    schedule = denoiser.schedule
    observed = mask.unsqueeze(1).expand_as(x_obs)
    known = torch.where(observed, x_obs, torch.zeros_like(x_obs))
    tt = torch.full(
        (x_obs.shape[0],),
        schedule.t_min if t is None else t,
        device=x_obs.device,
        dtype=x_obs.dtype,
    )
    eps = torch.randn(x_obs.shape, generator=generator, device=x_obs.device, dtype=x_obs.dtype)
    x_t = schedule.alpha(tt)[0] * known + schedule.sigma(tt)[0] * eps
    pred = denoiser(x_t, mask, tt)
    return torch.where(observed, x_obs, pred), torch.zeros_like(x_obs)


def cross_distribution_ratio(train_p: float, context_ratio: float, test_p: float) -> float:
    """Context ratio at test observation ratio ``test_p`` that keeps the training-time input
    density ``train_p · context_ratio`` (App. G.3): ``min(1, p·r / p′)``."""
    for name, value in (("train_p", train_p), ("context_ratio", context_ratio), ("test_p", test_p)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name}={value} must lie in (0, 1]")
    return min(1.0, train_p * context_ratio / test_p)
