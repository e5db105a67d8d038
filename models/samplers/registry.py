"""The samplers by name — ``single`` (Sec. 3.3), ``multi`` (Alg. 4), ``direct`` (Table 4) —
behind one call, for evaluation and serving alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from incdyn.datasets.masks import MaskFamily
from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition
from incdyn.models.samplers.direct import direct_impute
from incdyn.models.samplers.forward import MAX_NETWORK_POINTS
from incdyn.models.samplers.multistep import multistep_impute
from incdyn.models.samplers.single import ensemble_impute


@dataclass(frozen=True)
class SamplerPlan:
    """What a sampler needs besides the data.

    Attributes:
        partition: partition of the ensemble's context masks (the inference partition).
        family: the observation-mask family (multi-step draws whole-grid masks from it).
        trained: the training partition where it differs from ``partition`` (App. G.3):
            multi-step's whole-grid masks keep the training-time density.
        k: ensemble size K.
        steps: multi-step: reverse steps from t = 1 to t_min.
        weight: multi-step: w(t) of the μ₀ blend, ``zero``, ``t`` or ``t2`` (Table 7).
        max_batch: largest network batch.
        max_points: most grid points (rows × H × W) in one network batch.
    """

    partition: Partition
    family: MaskFamily
    trained: Partition | None = None
    k: int = 10
    steps: int = 50
    weight: str = "t"
    max_batch: int = 256
    max_points: int = MAX_NETWORK_POINTS


Output = tuple[torch.Tensor, torch.Tensor]


def _single(den: Denoiser, x, m, plan: SamplerPlan, g: torch.Generator, mu0=None) -> Output:
    return ensemble_impute(
        den,
        x,
        m,
        plan.partition,
        k=plan.k,
        generator=g,
        max_batch=plan.max_batch,
        max_points=plan.max_points,
    )


def _multi(den: Denoiser, x, m, plan: SamplerPlan, g: torch.Generator, mu0=None) -> Output:
    return multistep_impute(
        den,
        x,
        m,
        plan.partition,
        plan.family,
        steps=plan.steps,
        weight=plan.weight,
        k=plan.k,
        generator=g,
        mu0=mu0,
        step_partition=plan.trained,
        max_batch=plan.max_batch,
        max_points=plan.max_points,
    )


def _direct(den: Denoiser, x, m, plan: SamplerPlan, g: torch.Generator, mu0=None) -> Output:
    return direct_impute(den, x, m, generator=g)


SAMPLERS: dict[str, Callable[..., Output]] = {"single": _single, "multi": _multi, "direct": _direct}


def impute(
    kind: str,
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    plan: SamplerPlan,
    *,
    generator: torch.Generator,
    mu0: torch.Tensor | None = None,
) -> Output:
    """Impute ``(B, C, T, H, W)`` fields (mask bool ``(B, T, H, W)``) with sampler ``kind``;
    returns ``(imputed, spread)``. ``mu0``: multi-step's single-step estimate, if computed."""
    if kind not in SAMPLERS:
        raise ValueError(f"sampler {kind!r} is not one of {sorted(SAMPLERS)}")
    return SAMPLERS[kind](denoiser, x_obs, mask, plan, generator, mu0)
