"""Where to observe next in one window: the K members of the single-step ensemble, the units of
one frame, and the greedy choice by expected variance reduction (``models/targeting.py``).

Everything is in model units (fields divided by the training standard deviation): the summed
variance adds channels of different physical units, and ``noise`` is an observation's noise
standard deviation in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.observation_units import UnitKind, frame_units
from incdyn.models.samplers.registry import SamplerPlan
from incdyn.models.samplers.single import ensemble_members
from incdyn.models.targeting import Rule, suggest_units


@dataclass(frozen=True)
class UnitRequest:
    """What to choose.

    Attributes:
        frame: the window's frame the new observations are taken at.
        budget: number of units to choose.
        unit: ``point``, ``station`` or ``tile``.
        rule: ``variance`` (greedy), ``spread`` or ``random``.
        noise: an observation's noise standard deviation, in training-std units (> 0).
        tile: side of a tile in grid points (``tile`` units).
        sites: candidate station positions ``(y, x)`` (``station`` units).
        radius: a station's disk radius in grid points.
        candidates: bool ``(H, W)``: where a unit may reveal points (default: every point
            unobserved at ``frame`` and inside the domain).
    """

    frame: int
    budget: int
    unit: UnitKind = "point"
    rule: Rule = "variance"
    noise: float = 0.1
    tile: int = 4
    sites: list[tuple[int, int]] = field(default_factory=list)
    radius: float = 1.0
    candidates: torch.Tensor | None = None


@dataclass(frozen=True)
class Suggestion:
    """The ranked units and the ensemble they were chosen from.

    Attributes:
        picks: per unit in order: its position, ``reduction`` and ``remaining`` (summed
            variance of the unobserved domain entries of the window, model units²).
        total: that summed variance before any pick.
        spread: ``(H, W)`` ensemble standard deviation at the frame, summed over channels in
            variance (0 at observed points).
        members: ``(K, C, T, H, W)`` members.
    """

    picks: list[dict]
    total: float
    spread: torch.Tensor
    members: torch.Tensor


def suggest_window(
    denoiser: Denoiser,
    plan: SamplerPlan,
    x: torch.Tensor,
    mask: torch.Tensor,
    request: UnitRequest,
    *,
    domain: torch.Tensor | None = None,
    k: int | None = None,
    generator: torch.Generator,
) -> Suggestion:
    """Choose ``request.budget`` units for a normalised window ``x`` ``(C, T, H, W)`` with mask
    bool ``(T, H, W)`` and domain bool ``(H, W)`` (default: the whole grid)."""
    c, t, h, w = x.shape
    domain = torch.ones(h, w, dtype=torch.bool) if domain is None else domain.bool()
    members = ensemble_members(
        denoiser,
        x[None],
        mask[None],
        plan.partition,
        k=k or plan.k,
        generator=generator,
        max_batch=plan.max_batch,
        max_points=plan.max_points,
    )[0]
    if members.shape[0] < 2:
        raise ValueError("choosing units needs an ensemble of at least 2 members (k >= 2)")
    # observed entries are known: their members are the observed values, no variance
    known = (mask | ~domain)[None].expand(c, t, h, w)
    members = torch.where(known, x, members).cpu()
    candidates = ~mask[request.frame].cpu() & domain.cpu()
    if request.candidates is not None:
        candidates &= request.candidates.cpu().bool()
    fu = frame_units(
        request.unit,
        candidates,
        channels=c,
        frames=t,
        frame=request.frame,
        tile=request.tile,
        sites=request.sites,
        radius=request.radius,
    )
    flat = members.reshape(members.shape[0], -1)
    picks = suggest_units(
        flat,
        fu.units,
        request.budget,
        noise_var=request.noise**2,
        target=(~known).flatten().cpu(),
        rule=request.rule,
        generator=generator if request.rule == "random" else None,
    )
    variance = members.double().var(0)  # (C, T, H, W)
    total = float(variance[~known.cpu()].sum())
    ranked = [
        {"rank": i + 1, **fu.where[p.unit], "reduction": p.reduction, "remaining": p.remaining}
        for i, p in enumerate(picks)
    ]
    return Suggestion(ranked, total, variance[:, request.frame].sum(0).sqrt().float(), members)
