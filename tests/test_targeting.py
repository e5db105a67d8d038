"""Greedy observation targeting against the Kalman update of a known Gaussian covariance."""

from __future__ import annotations

import pytest
import torch

from incdyn.models.targeting import Units, anomalies, suggest_units


def _members_with_covariance(cov: torch.Tensor) -> torch.Tensor:
    """``P + 1`` members whose sample covariance is exactly ``cov`` (``P × P``)."""
    p = cov.shape[0]
    # P + 1 centred directions: the rows of an orthonormal basis of the sum-zero subspace
    centred = torch.eye(p + 1, dtype=torch.float64) - 1.0 / (p + 1)
    basis = torch.linalg.svd(centred).U[:, :p]  # (P + 1, P), columns orthonormal, rows sum 0
    root = torch.linalg.cholesky(cov)
    return (p**0.5) * basis @ root.T  # anomalies (basis @ Lᵀ) have Aᵀ A = L Lᵀ


def _kalman_greedy(cov, units, budget, noise_var, target):
    """Greedy picks with the full-covariance Kalman update, brute force."""
    picks, chosen = [], set()
    for _ in range(budget):
        best = None
        for u, rows in enumerate(units):
            if u in chosen:
                continue
            h = torch.zeros(len(rows), cov.shape[0], dtype=cov.dtype)
            h[torch.arange(len(rows)), rows] = 1.0
            gain = cov @ h.T @ torch.linalg.inv(h @ cov @ h.T + noise_var * torch.eye(len(rows)))
            post = cov - gain @ h @ cov
            red = float(cov.diagonal()[target].sum() - post.diagonal()[target].sum())
            if best is None or red > best[1]:
                best = (u, red, post)
        chosen.add(best[0])
        picks.append((best[0], best[1]))
        cov = best[2]
    return picks


def test_greedy_picks_and_reductions_equal_the_kalman_update():
    g = torch.Generator().manual_seed(0)
    p = 12
    x = torch.linspace(0.0, 1.0, p, dtype=torch.float64)
    scale = torch.rand(p, generator=g, dtype=torch.float64) + 0.5
    cov = scale[:, None] * scale[None, :] * torch.exp(-((x[:, None] - x[None, :]) ** 2) / 0.05)
    cov += 1e-3 * torch.eye(p, dtype=torch.float64)
    members = _members_with_covariance(cov)
    assert torch.allclose(anomalies(members).T @ anomalies(members), cov, atol=1e-10)
    # units: single points 0..5, and two-point "stations" {6, 7}, {7, 8}, {8, 9} that share
    # entries; 10, 11 are targets only, 0 and 1 are not
    units = [[i] for i in range(6)] + [[6, 7], [7, 8], [8, 9]]
    pairs = torch.tensor([(e, u) for u, rows in enumerate(units) for e in rows])
    target = torch.ones(p, dtype=torch.bool)
    target[:2] = False
    candidates = Units(pairs[:, 0], pairs[:, 1], len(units))
    picks = suggest_units(members, candidates, 4, noise_var=0.1, target=target)
    expected = _kalman_greedy(cov, units, 4, 0.1, target)
    assert [pk.unit for pk in picks] == [u for u, _ in expected]
    assert torch.allclose(
        torch.tensor([pk.reduction for pk in picks], dtype=torch.float64),
        torch.tensor([r for _, r in expected], dtype=torch.float64),
        rtol=1e-8,
    )
    assert picks[-1].remaining == pytest.approx(
        float(cov.diagonal()[target].sum()) - sum(r for _, r in expected), rel=1e-8
    )


def test_independent_points_reduce_by_sigma4_over_sigma2_plus_noise():
    variances = torch.tensor([1.0, 4.0, 0.25, 2.0], dtype=torch.float64)
    members = _members_with_covariance(torch.diag(variances))
    picks = suggest_units(members, Units.of(torch.arange(4)), 4, noise_var=0.5)
    assert [pk.unit for pk in picks] == [1, 3, 0, 2]  # largest variance first, none repeated
    expected = variances[[1, 3, 0, 2]] ** 2 / (variances[[1, 3, 0, 2]] + 0.5)
    assert torch.allclose(
        torch.tensor([pk.reduction for pk in picks], dtype=torch.float64), expected, rtol=1e-10
    )


def test_rules_stay_on_candidates_never_repeat_and_refuse_a_large_budget():
    g = torch.Generator().manual_seed(1)
    members = torch.randn(8, 30, generator=g, dtype=torch.float64)
    unit_of = torch.full((30,), -1, dtype=torch.long)
    unit_of[10:20] = torch.arange(10)  # entries 0-9 and 20-29: observed / outside the domain
    units = Units.of(unit_of)
    for rule in ("variance", "spread", "random"):
        picks = suggest_units(
            members, units, 10, noise_var=0.2, rule=rule, generator=torch.Generator()
        )
        assert sorted(pk.unit for pk in picks) == list(range(10))
        assert all(pk.reduction >= 0.0 for pk in picks)
    spread = suggest_units(members, units, 3, noise_var=0.2, rule="spread")
    var = anomalies(members).pow(2).sum(0)[10:20]
    assert [pk.unit for pk in spread] == var.argsort(descending=True)[:3].tolist()
    first = suggest_units(members, units, 1, noise_var=0.2)[0]
    assert first.reduction >= spread[0].reduction  # greedy's first pick is the best single unit
    with pytest.raises(ValueError, match="budget=11: there are 10 candidate units"):
        suggest_units(members, units, 11, noise_var=0.2)
    with pytest.raises(ValueError, match="noise_var"):
        suggest_units(members, units, 1, noise_var=0.0)
