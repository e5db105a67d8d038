"""Single-step ensemble imputation over context masks (Sec. 3.3, Theorem 2).

``x̂ = (1/K) Σ_k D_θ(δ, M_ctx^k ⊙ x_δ, M_ctx^k)``, ``output = M ⊙ x_obs + (1 − M) ⊙ x̂``.
The K context masks of every sample go through the network as one batch (chunked to bound
memory and to keep large grids in small forwards), not as K sequential calls. ``K = 1`` with
``context_ratio = 1`` is direct inference.
"""

from __future__ import annotations

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition
from incdyn.models.samplers.forward import (
    MAX_NETWORK_POINTS,
    denoise_chunked,
    ensemble_stats,
    merge_observed,
    noised,
)


@torch.no_grad()
def ensemble_impute(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    partition: Partition,
    *,
    k: int,
    generator: torch.Generator,
    t: float | None = None,
    max_batch: int = 256,
    max_points: int = MAX_NETWORK_POINTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Impute ``(B, C, T, H, W)`` fields; returns ``(imputed, spread)``, both ``(B, C, T, H, W)``.

    Args:
        denoiser: trained ``D_θ``.
        x_obs: observed field, zero (or anything finite) at unobserved points.
        mask: observation mask, bool ``(B, T, H, W)``.
        partition: the strategy whose context masks form the ensemble.
        k: ensemble size K.
        generator: source of the context masks and of ``ε``.
        t: diffusion time δ of the single step (default: the schedule's ``t_min``).
        max_batch: largest network batch (``B·K`` is split into chunks of at most this size).
        max_points: most grid points (rows × H × W) in one network batch (at least one row).
    Returns:
        imputed: observed points equal ``x_obs``; elsewhere the ensemble mean.
        spread: ensemble standard deviation per point (0 at observed points).
    """
    preds = ensemble_members(
        denoiser,
        x_obs,
        mask,
        partition,
        k=k,
        generator=generator,
        t=t,
        max_batch=max_batch,
        max_points=max_points,
    )
    return merge_observed(x_obs, mask, *ensemble_stats(preds))


@torch.no_grad()
def ensemble_members(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    partition: Partition,
    *,
    k: int,
    generator: torch.Generator,
    t: float | None = None,
    max_batch: int = 256,
    max_points: int = MAX_NETWORK_POINTS,
) -> torch.Tensor:
    """The K members ``D_θ(δ, M_ctx^k ⊙ x_δ, M_ctx^k)`` of the ensemble, ``(B, K, C, T, H, W)``
    (not merged with the observed points); arguments as :func:`ensemble_impute`."""
    if k < 1:
        raise ValueError(f"ensemble size k={k} must be >= 1")
    b = x_obs.shape[0]
    ctx = partition.context(mask.repeat_interleave(k, dim=0), generator)
    x = torch.where(mask.unsqueeze(1), x_obs, torch.zeros_like(x_obs)).repeat_interleave(k, dim=0)
    x_t, tt = noised(denoiser, x, denoiser.schedule.t_min if t is None else t, generator)
    return denoise_chunked(denoiser, x_t, ctx, tt, max_batch, max_points).view(
        b, k, *x_obs.shape[1:]
    )
