"""Single-step ensemble imputation over context masks (Sec. 3.3, Theorem 2).

``x̂ = (1/K) Σ_k D_θ(δ, M_ctx^k ⊙ x_δ, M_ctx^k)``, ``output = M ⊙ x_obs + (1 − M) ⊙ x̂``.
The K context masks of every sample go through the network as one batch (chunked to bound
memory), not as K sequential calls. ``K = 1`` with ``context_ratio = 1`` is direct inference.
"""

from __future__ import annotations

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition


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
    Returns:
        imputed: observed points equal ``x_obs``; elsewhere the ensemble mean.
        spread: ensemble standard deviation per point (0 at observed points).
    """
    if k < 1:
        raise ValueError(f"ensemble size k={k} must be >= 1")
    schedule = denoiser.schedule
    b = x_obs.shape[0]
    t_val = schedule.t_min if t is None else t
    masks = mask.repeat_interleave(k, dim=0)
    ctx = partition.context(masks, generator)
    x = torch.where(mask.unsqueeze(1), x_obs, torch.zeros_like(x_obs)).repeat_interleave(k, dim=0)
    tt = torch.full((b * k,), t_val, device=x.device, dtype=x.dtype)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_t = schedule.alpha(tt)[0] * x + schedule.sigma(tt)[0] * eps
    preds = torch.cat(
        [
            denoiser(x_t[i : i + max_batch], ctx[i : i + max_batch], tt[i : i + max_batch])
            for i in range(0, b * k, max_batch)
        ]
    )
    preds = preds.view(b, k, *x_obs.shape[1:])
    mean = preds.mean(dim=1)
    spread = preds.std(dim=1, unbiased=False)
    observed = mask.unsqueeze(1).expand_as(x_obs)
    imputed = torch.where(observed, x_obs, mean)
    spread = torch.where(observed, torch.zeros_like(spread), spread)
    return imputed, spread
