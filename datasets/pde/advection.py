"""Linear advection (paper Eq. 65b, App. G.1): exact spectral transport of a scalar on a torus.

``∂c/∂t + a·∇c = 0`` with a constant velocity ``a = (a_x, a_y)`` per sample has the solution
``c(x, t) = c₀(x − a t)``; :func:`advect` evaluates it exactly for band-limited data by
multiplying the Fourier transform by ``exp(−i (k_x a_x + k_y a_y) t)`` (float64 inside). The
Nyquist modes, whose direction a real grid cannot resolve, are not moved exactly (the random
initial conditions here have none). The same solver is the forward model of
``physics_metrics.advection_forward_mse``. Grid index: axis −2 is y, axis −1 is x.

    from incdyn.datasets.pde.advection import PRESETS, generate
    sim = generate(PRESETS["small"], n=300, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.source_config import Int, Number, SourceConfig

CHANNELS = ("c",)


class AdvectionConfig(SourceConfig):
    """A random smooth scalar carried at a random constant velocity on a periodic square.

    Attributes:
        grid: points per side ``N`` of the ``N × N`` grid; an integer ≥ 4.
        frames: stored frames ``T`` (≥ 1); frame 0 is the initial condition.
        frame_interval: time between stored frames in s (> 0).
        domain: side length ``L`` of the square in m (> 0).
        speed_range: speed ``|a|`` in m/s, uniform per sample (0 ≤ lo ≤ hi); the direction is
            uniform on the circle.
        max_wavenumber: the initial field has Fourier modes with ``1 ≤ |n| ≤ max_wavenumber``
            waves per box (integer, 1 ≤ max_wavenumber < N/2).
        spectral_decay: mode amplitudes fall as ``|n|^(−spectral_decay)`` (≥ 0).
    """

    grid: Int = Field(64, ge=4)  # points per side
    frames: Int = Field(50, ge=1)  # stored frames
    frame_interval: Number = Field(0.05, gt=0.0)  # time between frames, s
    domain: Number = Field(2 * math.pi, gt=0.0)  # side L, m
    speed_range: tuple[Number, Number] = (0.5, 2.0)  # |a|, m/s (shift over 50 frames: 1.2–4.9 m)
    max_wavenumber: Int = Field(4, ge=1)  # modes 1 ≤ |n| ≤ 4 waves per box
    spectral_decay: Number = Field(1.0, ge=0.0)  # amplitude ∝ |n|^-decay

    @field_validator("speed_range")
    @classmethod
    def _ordered(cls, rng: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= rng[0] <= rng[1]:
            raise ValueError("expected a pair (lo, hi) with 0 ≤ lo ≤ hi")
        return rng

    @field_validator("max_wavenumber")
    @classmethod
    def _resolved(cls, modes: int, info: ValidationInfo) -> int:
        grid = info.data.get("grid")
        if grid is not None and not modes < grid / 2:
            raise ValueError(f"expected 1 ≤ max_wavenumber < grid/2 = {grid / 2}")
        return modes


PRESETS: dict[str, AdvectionConfig] = {
    # The paper's resolution (App. G.1: 64×64, 50 frames; 5k/1k/1k samples live elsewhere).
    "paper": AdvectionConfig(),
    # Small and quick: 32×32×16 over a similar time span.
    "small": AdvectionConfig(grid=32, frames=16, frame_interval=0.15),
}


def _lengths(domain: float | Sequence[float]) -> tuple[float, float]:
    """``(L_y, L_x)`` from a side length or a pair."""
    if isinstance(domain, int | float):
        return float(domain), float(domain)
    ly, lx = domain
    return float(ly), float(lx)


def advect(
    c0: torch.Tensor,
    ax: torch.Tensor,
    ay: torch.Tensor,
    times: torch.Tensor | Sequence[float],
    domain: float | Sequence[float] = 2 * math.pi,
) -> torch.Tensor:
    """Exact solution ``c(t) = c₀(x − a t)`` of ``∂c/∂t + a·∇c = 0`` on a periodic grid.

    Args:
        c0: ``(B, H, W)`` initial fields (axis −2 is y, axis −1 is x).
        ax, ay: ``(B,)`` velocity components (x and y) per sample.
        times: ``(T,)`` times at which to evaluate.
        domain: side length, or ``(L_y, L_x)``, of the periodic box.
    Returns:
        ``(B, T, H, W)`` in ``c0``'s dtype (float64 inside).
    """
    if c0.ndim != 3:
        raise ValueError(f"c0 must be (B, H, W), got shape {tuple(c0.shape)}")
    ny, nx = c0.shape[-2:]
    ly, lx = _lengths(domain)
    f64 = dict(dtype=torch.float64, device=c0.device)
    ky = (2 * math.pi / ly) * torch.fft.fftfreq(ny, d=1.0 / ny, **f64)[:, None]
    kx = (2 * math.pi / lx) * torch.fft.rfftfreq(nx, d=1.0 / nx, **f64)[None, :]
    ax = torch.as_tensor(ax, **f64).reshape(-1, 1, 1)
    ay = torch.as_tensor(ay, **f64).reshape(-1, 1, 1)
    c_hat = torch.fft.rfft2(c0.to(torch.float64))
    times = torch.as_tensor(times, **f64).reshape(-1)
    out = torch.empty((c0.shape[0], len(times), ny, nx), dtype=c0.dtype, device=c0.device)
    for i, t in enumerate(times):
        # exp(−i k·a t) = exp(−i k_y a_y t) · exp(−i k_x a_x t): two small exponentials
        shift = torch.exp(-1j * (ky * (ay * t))) * torch.exp(-1j * (kx * (ax * t)))
        out[:, i] = torch.fft.irfft2(c_hat * shift, s=(ny, nx))
    return out


def random_initial_field(cfg: AdvectionConfig, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` smooth random fields ``(n, N, N)`` float64 with zero mean and unit rms.

    Fourier coefficients are complex Gaussian with amplitude ``|n|^(−spectral_decay)`` on the
    wavenumbers ``1 ≤ |n| ≤ max_wavenumber`` (waves per box) and zero elsewhere.
    """
    if n < 0:
        raise ValueError(f"n={n!r} must be ≥ 0")
    kw = dict(generator=generator, dtype=torch.float64, device=generator.device)
    shape = (n, cfg.grid, cfg.grid // 2 + 1)
    coeff = torch.complex(torch.randn(shape, **kw), torch.randn(shape, **kw))
    ny = torch.fft.fftfreq(cfg.grid, d=1.0 / cfg.grid, dtype=torch.float64)[:, None]
    nx = torch.fft.rfftfreq(cfg.grid, d=1.0 / cfg.grid, dtype=torch.float64)[None, :]
    n_abs = torch.sqrt(nx**2 + ny**2)
    band = (n_abs >= 1) & (n_abs <= cfg.max_wavenumber)
    amplitude = torch.where(band, n_abs.clamp_min(1.0) ** -cfg.spectral_decay, 0.0)
    c = torch.fft.irfft2(coeff * amplitude.to(generator.device), s=(cfg.grid, cfg.grid))
    return c / c.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()


def generate(cfg: AdvectionConfig, n: int, generator: torch.Generator) -> Simulation:
    """``n`` trajectories: fields ``(n, T, 1, N, N)`` float32, params ``ax``, ``ay`` (float64).

    Computed on ``generator.device``; the returned tensors are on the CPU.
    """
    c0 = random_initial_field(cfg, n, generator).float()  # frame 0 exactly as stored
    kw = dict(generator=generator, dtype=torch.float64, device=generator.device)
    lo, hi = cfg.speed_range
    speed = lo + (hi - lo) * torch.rand(n, **kw)
    angle = 2 * math.pi * torch.rand(n, **kw)
    ax, ay = speed * torch.cos(angle), speed * torch.sin(angle)
    time = np.arange(cfg.frames) * cfg.frame_interval
    fields = advect(c0, ax, ay, torch.from_numpy(time), cfg.domain).cpu()
    coords = np.arange(cfg.grid) * (cfg.domain / cfg.grid)
    return Simulation(
        fields=fields[:, :, None],
        params={"ax": ax.cpu(), "ay": ay.cpu()},
        channels=CHANNELS,
        time=time,
        y=coords.copy(),
        x=coords,
        units={"c": "1", "ax": "m/s", "ay": "m/s", "time": "s", "x": "m", "y": "m"},
    )
