"""Physics metrics of App. G.1: the shallow-water feasibility loss and the advection forward MSE.

Both take complete (reconstructed) fields and the per-sample parameters stored with the data,
work in float64 and return one float64 value per sample, ``(N,)``; lower is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from incdyn.datasets.pde.advection import advect

# The unit of the feasibility loss, as reports name it: the residuals keep the equations' units.
FEASIBILITY_UNITS = (
    "in physical units, not normalised (the mean square of the shallow-water equations' "
    "residuals: (m/s²)² for the two momentum equations, (m/s)² for the height equation)"
)


def _dx(a: torch.Tensor, d: float) -> torch.Tensor:
    return (a.roll(-1, -1) - a.roll(1, -1)) / (2 * d)  # periodic central difference in x


def _dy(a: torch.Tensor, d: float) -> torch.Tensor:
    return (a.roll(-1, -2) - a.roll(1, -2)) / (2 * d)  # periodic central difference in y


def shallow_water_residual(
    fields: torch.Tensor,
    f: torch.Tensor,
    g: torch.Tensor,
    H: torch.Tensor,
    dt_frame: float,
    dx: float,
    dy: float,
) -> torch.Tensor:
    """Feasibility loss: mean squared residual of the rotating shallow-water equations (65a).

    ``fields`` is ``(N, T, 3, H, W)`` with channels ``(u, v, h)`` on a collocated grid (cell
    centres, as stored), ``T ≥ 3``; ``f``, ``g``, ``H`` are ``(N,)``. On the interior frames
    ``t = 1 … T−2``, with ``∂_t F = (F[t+1] − F[t−1]) / (2 dt_frame)`` and periodic central
    differences ``∂_x F = (F[i+1] − F[i−1]) / (2 dx)`` (likewise ``∂_y`` with ``dy``):

        R_u = ∂_t u − f v + g ∂_x h + u ∂_x u + v ∂_y u
        R_v = ∂_t v + f u + g ∂_y h + u ∂_x v + v ∂_y v
        R_h = ∂_t h + ∂_x((H + h) u) + ∂_y((H + h) v)

    Returns ``mean over (t, y, x) of (R_u² + R_v² + R_h²) / 3`` per sample, ``(N,)`` float64
    (units of (m/s²)² for u, v and (m/s)² for h: not normalised). A trajectory from the solver
    is not exactly zero (O(dt_frame², dx²) truncation: ~3e-9–3e-7 for the paper preset, ~5e-8–4e-6
    for the small one); noise on 20 % of the points raises it by orders of magnitude.
    """
    if fields.ndim != 5 or fields.shape[2] != 3:
        raise ValueError(f"fields must be (N, T, 3, H, W), got shape {tuple(fields.shape)}")
    if fields.shape[1] < 3:
        raise ValueError(
            f"need at least 3 frames for central time differences, got {fields.shape[1]}"
        )
    x = fields.to(torch.float64)
    kw = dict(dtype=torch.float64, device=x.device)
    f, g, H = (torch.as_tensor(p, **kw).reshape(-1, 1, 1, 1) for p in (f, g, H))
    u, v, h = x[:, 1:-1].unbind(dim=2)  # (N, T-2, H, W)
    du, dv, dh = ((x[:, 2:] - x[:, :-2]) / (2 * dt_frame)).unbind(dim=2)
    r_u = du - f * v + g * _dx(h, dx) + u * _dx(u, dx) + v * _dy(u, dy)
    r_v = dv + f * u + g * _dy(h, dy) + u * _dx(v, dx) + v * _dy(v, dy)
    depth = H + h
    r_h = dh + _dx(depth * u, dx) + _dy(depth * v, dy)
    return ((r_u**2 + r_v**2 + r_h**2) / 3).mean(dim=(1, 2, 3))


def advection_forward_mse(
    first_frame: torch.Tensor,
    truth: torch.Tensor,
    ax: torch.Tensor,
    ay: torch.Tensor,
    times: torch.Tensor | Sequence[float],
    domain: float | Sequence[float] = 2 * math.pi,
) -> torch.Tensor:
    """Forward-simulation MSE: advect ``first_frame`` over ``times`` and compare with ``truth``.

    ``first_frame`` is a reconstructed ``(N, H, W)`` frame at ``times[0]``, ``truth`` the
    ``(N, T, H, W)`` ground truth at ``times`` (``(T,)``), ``ax``, ``ay`` ``(N,)`` the true
    velocities and ``domain`` the side length (or ``(L_y, L_x)``). The solver is the exact
    spectral :func:`incdyn.datasets.pde.advection.advect`, started at ``times[0]``. Returns the
    mean over ``(T, H, W)`` of the squared error per sample, ``(N,)`` float64.
    """
    if truth.ndim != 4 or tuple(first_frame.shape) != (truth.shape[0], *truth.shape[2:]):
        raise ValueError(
            f"expected first_frame (N, H, W) and truth (N, T, H, W), got "
            f"{tuple(first_frame.shape)} and {tuple(truth.shape)}"
        )
    times = torch.as_tensor(times, dtype=torch.float64, device=truth.device).reshape(-1)
    if len(times) != truth.shape[1]:
        raise ValueError(f"{len(times)} times for {truth.shape[1]} frames")
    pred = advect(first_frame.to(torch.float64), ax, ay, times - times[0], domain)
    return (pred - truth.to(torch.float64)).pow(2).mean(dim=(1, 2, 3))
