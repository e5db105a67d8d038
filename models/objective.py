"""Training objective: data matching on the context, loss on the query (Alg. 1, Eq. 1).

``x_t = M ⊙ (α_t x_obs + σ_t ε)``,  ``L = ‖M_qry ⊙ (D_θ(t, M_ctx ⊙ x_t, M_ctx) − x_obs)‖²``,
averaged over query entries. :func:`complete_data_loss` is the complete-data oracle's: the same
context, the complete field, every point a query.
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
    ctx, qry = partition.split(mask, generator)
    return _query_loss(denoiser, x_obs, mask, ctx, qry, generator)


def complete_data_loss(
    denoiser: Denoiser,
    truth: torch.Tensor,
    mask: torch.Tensor,
    partition: Partition,
    generator: torch.Generator,
) -> torch.Tensor:
    """The complete-data oracle's objective: the context is drawn from the observation mask as
    in :func:`data_matching_loss`, but the field is complete and every point is a query.

    Args:
        truth: complete field ``(B, C, T, H, W)``; non-finite entries (outside a physical
            domain) are neither noised nor scored.
        mask: observation mask, bool ``(B, T, H, W)``: where the context is drawn from.
    """
    finite = torch.isfinite(truth)
    everywhere = finite.all(dim=1)
    ctx = partition.context(mask, generator) & everywhere
    x = torch.where(finite, truth, torch.zeros_like(truth))
    return _query_loss(denoiser, x, everywhere, ctx, everywhere, generator)


def _query_loss(
    denoiser: Denoiser,
    x: torch.Tensor,
    known: torch.Tensor,
    ctx: torch.Tensor,
    qry: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """``‖M_qry ⊙ (D_θ(t, M_ctx ⊙ x_t, M_ctx) − x)‖²`` averaged over query entries, with
    ``x_t = known ⊙ (α_t x + σ_t ε)``."""
    schedule = denoiser.module.schedule if hasattr(denoiser, "module") else denoiser.schedule
    b = x.shape[0]
    t = schedule.sample_t(b, generator, x.device)
    shape = (b, 1, 1, 1, 1)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    m = known.unsqueeze(1).to(x.dtype)
    x_t = m * (schedule.alpha(t).view(shape) * x + schedule.sigma(t).view(shape) * eps)
    pred = denoiser(x_t, ctx, t)
    q = qry.unsqueeze(1).to(x.dtype)
    n = (q.sum() * x.shape[1]).clamp_min(1.0)
    return (q * (pred - x) ** 2).sum() / n
