"""Where to observe next: greedy choice of observation units from an ensemble's covariance.

The K members of an imputation carry how their errors move together. With the members'
anomalies ``A`` (``K × P``, rows ``(x_k − x̄)/√(K − 1)``) the predictive covariance is the
low-rank ``C = Aᵀ A``. Observing a unit ``u`` (a set ``S`` of field entries: one grid point with
all its channels, a station's disk, a satellite tile) with independent noise of variance ``r²``
updates it by the linear-Gaussian (Kalman) rule ``C' = C − C Hᵀ (H C Hᵀ + r² I)⁻¹ H C``. In the
members' space (Bishop et al. 2001's ensemble transform) with ``Q_u = A_S A_Sᵀ`` and the target
entries' ``G = A_T A_Tᵀ`` (both ``K × K``):

    reduction_u = tr(C_T) − tr(C'_T) = tr(G Q_u (Q_u + r² I)⁻¹)
    A ← (I + Q_u / r²)^(-1/2) A                      (the update, exact for C)

Greedy targeting picks the unit of largest reduction, transforms the anomalies and repeats, so
that a later pick counts only the variance the earlier ones left. Two references to compare
with: ``spread`` (the units of largest summed ensemble variance, no update) and ``random``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Rule = Literal["variance", "spread", "random"]


@dataclass(frozen=True)
class Pick:
    """One chosen unit.

    Attributes:
        unit: the unit's number (``0 … N − 1``).
        reduction: expected reduction of the summed target variance when it is observed, given
            the units picked before it (``variance`` rule; for ``spread`` and ``random`` the
            same quantity, evaluated in the order of their picks).
        remaining: summed target variance left after this pick.
    """

    unit: int
    reduction: float
    remaining: float


def anomalies(members: torch.Tensor) -> torch.Tensor:
    """``(K, P)`` members → ``(K, P)`` float64 anomalies ``(x_k − x̄)/√(K − 1)``, so that
    ``Aᵀ A`` is the members' sample covariance."""
    if members.ndim != 2 or members.shape[0] < 2:
        raise ValueError(f"members must be (K >= 2, P), got {tuple(members.shape)}")
    x = members.double()
    return (x - x.mean(0, keepdim=True)) / (x.shape[0] - 1) ** 0.5


@dataclass(frozen=True)
class Units:
    """Candidate observation units as (entry, unit) pairs; units may share entries (stations
    whose disks overlap).

    Attributes:
        entry: long ``(M,)``: flat field entries.
        unit: long ``(M,)``: the unit ``0 … N − 1`` each entry belongs to.
        count: ``N``, the number of units.
    """

    entry: torch.Tensor
    unit: torch.Tensor
    count: int

    @classmethod
    def of(cls, unit_of: torch.Tensor) -> Units:
        """Disjoint units from a long map of the unit of every entry (``-1``: in none)."""
        entry = (unit_of.flatten() >= 0).nonzero().flatten()
        unit = unit_of.flatten()[entry]
        return cls(entry, unit, int(unit.max()) + 1 if len(unit) else 0)


def _unit_gram(a: torch.Tensor, units: Units) -> torch.Tensor:
    """``Q_u = A_S A_Sᵀ`` of every unit, ``(N, K, K)``: the sum of ``a_p a_pᵀ`` over its entries."""
    cols = a[:, units.entry].T  # (M, K)
    outer = cols[:, :, None] * cols[:, None, :]  # (M, K, K)
    q = torch.zeros(units.count, a.shape[0], a.shape[0], dtype=a.dtype)
    return q.index_add_(0, units.unit, outer)


def _reductions(g: torch.Tensor, q: torch.Tensor, noise_var: float) -> torch.Tensor:
    """``tr(G Q_u (Q_u + r² I)⁻¹)`` for every unit, ``(N,)``."""
    eye = torch.eye(q.shape[-1], dtype=q.dtype)
    y = torch.linalg.solve(q + noise_var * eye, q)  # Q (Q + r²I)⁻¹ = (Q + r²I)⁻¹ Q: symmetric
    return (g * y).sum((-2, -1))


def _transform(q: torch.Tensor, noise_var: float) -> torch.Tensor:
    """The symmetric ``(I + Q / r²)^(-1/2)`` of one unit's ``Q``."""
    values, vectors = torch.linalg.eigh(q / noise_var)
    return (vectors * values.clamp_min(0.0).add(1.0).rsqrt()) @ vectors.T


def suggest_units(
    members: torch.Tensor,
    units: Units,
    budget: int,
    *,
    noise_var: float,
    target: torch.Tensor | None = None,
    rule: Rule = "variance",
    generator: torch.Generator | None = None,
) -> list[Pick]:
    """Choose ``budget`` observation units from the members of one imputation.

    Args:
        members: ``(K, P)`` ensemble members over the field's entries (flattened).
        units: the candidate units (entries observed already, outside the domain or of
            another frame belong to none).
        budget: number of units to choose, at most the number of candidate units.
        noise_var: variance ``r² > 0`` of an observation's noise, in the members' units.
        target: bool ``(P,)``: the entries whose summed variance counts (default: all).
        rule: ``variance`` (greedy, with the covariance update), ``spread`` (largest summed
            variance of the unit) or ``random`` (uniform, needs ``generator``).
        generator: source of the ``random`` rule's draw.
    Returns:
        The picks in order, none repeated.
    """
    if noise_var <= 0.0:
        raise ValueError(f"noise_var={noise_var} must be > 0 (the observation's noise variance)")
    present = torch.zeros(units.count, dtype=torch.bool)
    present[units.unit] = True
    if not 0 < budget <= int(present.sum()):
        raise ValueError(
            f"budget={budget}: there are {int(present.sum())} candidate units "
            "(ask for at least 1 and at most that many)"
        )
    a = anomalies(members)
    t = a if target is None else a[:, target]
    g = t @ t.T
    q = _unit_gram(a, units)
    order = _fixed_order(rule, a, units, present, budget, generator)
    picks: list[Pick] = []
    for step in range(budget):
        gain = _reductions(g, q, noise_var)
        if order is None:
            gain_free = torch.where(present, gain, -torch.inf)
            unit = int(gain_free.argmax())
        else:
            unit = order[step]
        s = _transform(q[unit], noise_var)
        g, q = s @ g @ s, s @ q @ s  # the same transform of every Gram matrix
        present[unit] = False
        picks.append(Pick(unit, float(gain[unit]), float(g.trace())))
    return picks


def _fixed_order(
    rule: Rule,
    a: torch.Tensor,
    units: Units,
    present: torch.Tensor,
    budget: int,
    generator: torch.Generator | None,
) -> list[int] | None:
    """The picks of the rules that do not look at the covariance (``None`` for ``variance``)."""
    if rule == "variance":
        return None
    candidates = present.nonzero().flatten()
    if rule == "spread":
        spread = torch.zeros(units.count, dtype=a.dtype)
        spread.index_add_(0, units.unit, (a[:, units.entry] ** 2).sum(0))
        return candidates[spread[candidates].argsort(descending=True)[:budget]].tolist()
    if rule == "random":
        if generator is None:
            raise ValueError("the random rule needs a generator")
        return candidates[torch.randperm(len(candidates), generator=generator)[:budget]].tolist()
    raise ValueError(f"rule={rule!r}: one of variance, spread, random")
