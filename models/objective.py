"""Training objective: data matching on the context, loss on the query (Alg. 1, Eq. 1).

``x_t = M ⊙ (α_t x_obs + σ_t ε)``,  ``L = ‖M_qry ⊙ (D_θ(t, M_ctx ⊙ x_t, M_ctx) − x_obs)‖²``,
averaged over query entries.
"""

from __future__ import annotations

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition


def data_matching_loss(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    partition: Partition,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean squared error over query entries.

    Args:
        denoiser: the model ``D_θ`` (possibly DDP-wrapped: anything called like a Denoiser).
        x_obs: observed field ``(B, C, T, H, W)``, zero at unobserved points.
        mask: observation mask, bool ``(B, T, H, W)``.
        partition: context/query strategy (Sec. 3.2).
        generator: source of the partition, ``t`` and ``ε``.
    """
    schedule = denoiser.module.schedule if hasattr(denoiser, "module") else denoiser.schedule
    ctx, qry = partition.split(mask, generator)
    b = x_obs.shape[0]
    t = schedule.sample_t(b, generator, x_obs.device)
    shape = (b, 1, 1, 1, 1)
    eps = torch.randn(x_obs.shape, generator=generator, device=x_obs.device, dtype=x_obs.dtype)
    m = mask.unsqueeze(1).to(x_obs.dtype)
    x_t = m * (schedule.alpha(t).view(shape) * x_obs + schedule.sigma(t).view(shape) * eps)
    pred = denoiser(x_t, ctx, t)
    q = qry.unsqueeze(1).to(x_obs.dtype)
    n = (q.sum() * x_obs.shape[1]).clamp_min(1.0)
    return (q * (pred - x_obs) ** 2).sum() / n
