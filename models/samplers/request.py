"""Imputation of many independently seeded requests (the serving path of the samplers).

Every request draws its masks and noise from its own ``Generator().manual_seed(seed)`` — the
draws the sampler makes for that request alone — so a request's answer does not depend on its
batch-mates. The single-step ensemble batches the rows of all requests (``Σ K_i``, mixed K
allowed) through the network together; the other samplers run request by request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.samplers.forward import denoise_chunked, ensemble_stats, merge_observed, noised
from incdyn.models.samplers.registry import SamplerPlan, impute


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


def _generator(item: SeededRequest) -> torch.Generator:
    return torch.Generator(device=item.x.device).manual_seed(item.seed)


@torch.no_grad()
def single_step(
    denoiser: Denoiser, plan: SamplerPlan, items: list[SeededRequest]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Single-step ensemble of every request in one chunked network pass; ``(imputed, spread)``
    per request, both ``(C, T, H, W)``."""
    xs, ctxs, ts = [], [], []
    for it in items:
        g = _generator(it)
        ctxs.append(plan.partition.context(it.mask[None].repeat_interleave(it.k, dim=0), g))
        x_t, tt = noised(
            denoiser, it.x[None].repeat_interleave(it.k, dim=0), denoiser.schedule.t_min, g
        )
        xs.append(x_t)
        ts.append(tt)
    preds = denoise_chunked(
        denoiser, torch.cat(xs), torch.cat(ctxs), torch.cat(ts), plan.max_batch, plan.max_points
    )
    out, start = [], 0
    for it in items:
        mean, std = ensemble_stats(preds[None, start : start + it.k])
        start += it.k
        imputed, spread = merge_observed(it.x, it.mask, mean[0], std[0])
        out.append((imputed, spread))
    return out


def impute_requests(
    kind: str, denoiser: Denoiser, plan: SamplerPlan, items: list[SeededRequest]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(imputed, spread)`` per request with sampler ``kind`` and each request's own K."""
    if kind == "single":
        return single_step(denoiser, plan, items)
    out = []
    for it in items:
        imputed, spread = impute(
            kind,
            denoiser,
            it.x[None],
            it.mask[None],
            dataclasses.replace(plan, k=it.k),
            generator=_generator(it),
        )
        out.append((imputed[0], spread[0]))
    return out
