"""Ensemble members of every sampler, ``(B, K, C, T, H, W)``, for verification and calibration.

- ``single`` (Sec. 3.3): the K context-mask predictions whose mean is the single-step estimate;
- ``multi`` (App. E, Alg. 4): ``draws`` independent runs of the multi-step sampler, each with its
  own noise, masks and ``μ₀``; a member is one run's output;
- ``direct`` (Table 4): ``K`` draws of the noise ``ε`` with the full mask as context.

The samplers' own outputs are unchanged; these are extra passes with their own draws.
"""

from __future__ import annotations

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.samplers.registry import SamplerPlan, impute
from incdyn.models.samplers.single import ensemble_members


@torch.no_grad()
def sampler_members(
    kind: str,
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    plan: SamplerPlan,
    *,
    members: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """``members`` members of sampler ``kind`` for ``(B, C, T, H, W)`` fields (mask bool
    ``(B, T, H, W)``): ``(B, members, C, T, H, W)``; multi-step runs use ``plan.k`` final masks."""
    if kind == "single":
        return ensemble_members(
            denoiser,
            x_obs,
            mask,
            plan.partition,
            k=members,
            generator=generator,
            max_batch=plan.max_batch,
            max_points=plan.max_points,
        )
    if kind in ("multi", "direct"):  # independent runs of the sampler, as the registry runs it
        runs = [
            impute(kind, denoiser, x_obs, mask, plan, generator=generator)[0]
            for _ in range(members)
        ]
        return torch.stack(runs, dim=1)
    raise ValueError(f"sampler {kind!r} has no members; one of single, multi, direct")
