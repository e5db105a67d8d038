"""Ensemble imputation of many independently seeded requests in one network batch (Sec. 3.3).

The serving path of ``ensemble_impute``: every request draws its K context masks, then its noise
``ε``, from its own ``Generator().manual_seed(seed)`` — exactly the draws ``ensemble_impute``
makes for that request alone — and the rows of all requests (``Σ K_i``, mixed K allowed) go
through the network together. A request's answer thus does not depend on its batch-mates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition


@dataclass
class SeededRequest:
    """One request in model units.

    Attributes:
        x: normalised field ``(C, T, H, W)``, 0 at unobserved points.
        mask: observation mask, bool ``(T, H, W)``.
        k: ensemble size K.
        seed: seed of the request's own generator.
    """

    x: torch.Tensor
    mask: torch.Tensor
    k: int
    seed: int


@torch.no_grad()
def single_step(
    denoiser: Denoiser, partition: Partition, items: list[SeededRequest], *, max_batch: int = 256
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Single-step ensemble of every request; returns ``(imputed, spread)`` per request, both
    ``(C, T, H, W)``: observed points are ``x``, elsewhere the ensemble mean and its std."""
    schedule = denoiser.schedule
    xs, ctxs, epss = [], [], []
    for it in items:
        g = torch.Generator(device=it.x.device).manual_seed(it.seed)
        ctxs.append(partition.context(it.mask[None].repeat_interleave(it.k, dim=0), g))
        x = it.x[None].repeat_interleave(it.k, dim=0)
        xs.append(x)
        epss.append(torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype))
    x, ctx, eps = torch.cat(xs), torch.cat(ctxs), torch.cat(epss)
    tt = torch.full((x.shape[0],), schedule.t_min, device=x.device, dtype=x.dtype)
    x_t = schedule.alpha(tt)[0] * x + schedule.sigma(tt)[0] * eps
    preds = torch.cat(
        [
            denoiser(x_t[i : i + max_batch], ctx[i : i + max_batch], tt[i : i + max_batch])
            for i in range(0, x.shape[0], max_batch)
        ]
    )
    out, start = [], 0
    for it in items:
        p = preds[start : start + it.k]
        start += it.k
        observed = it.mask[None].expand_as(it.x)
        imputed = torch.where(observed, it.x, p.mean(dim=0))
        spread = torch.where(observed, 0.0, p.std(dim=0, unbiased=False))
        out.append((imputed, spread))
    return out


RequestSampler = Callable[..., list[tuple[torch.Tensor, torch.Tensor]]]

# The serving option ``sampler`` names one of these. A multi-step sampler (Alg. 4) joins with
# the same signature: (denoiser, partition, items, *, max_batch) -> [(imputed, spread), ...].
SAMPLERS: dict[str, RequestSampler] = {"single": single_step}
