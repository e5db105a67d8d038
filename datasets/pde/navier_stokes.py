"""2-D decaying turbulence: a batched pseudo-spectral Navier–Stokes solver in vorticity form.

Solves, on the periodic box ``[0, L)^2``,

    ∂w/∂t + u·∇w = ν Δw,    u = ∂ψ/∂y,  v = −∂ψ/∂x,    −Δψ = w,

with ``rfft2`` over the last two axes (axis −2 is ``y``, axis −1 is ``x``), in float64;
:func:`generate` stores float32 frames.
Time stepping is the integrating-factor fourth-order Runge–Kutta scheme (Lawson's IF-RK4):
viscosity is integrated exactly by the factor ``exp(−ν|k|² t)`` and the advection term
explicitly. The nonlinear term is de-aliased with Orszag's 2/3 rule (modes with
``|n_x| < N/3`` and ``|n_y| < N/3`` are kept). The paper's Navier–Stokes set (Sec. 4.2,
App. G.1) is 1152 samples of 64×64×100 frames; sample counts live with the data specs.

    from incdyn.datasets.pde.navier_stokes import PRESETS, generate
    sim = generate(PRESETS["quickstart"], n=400, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.source_config import Int, Number, SourceConfig

CHANNELS = ("vorticity",)
# solve() refuses a CFL number max(|u| + |v|)·dt/dx above this. RK4 is linearly stable for
# |λ dt| ≤ 2√2 and the de-aliased |k| reaches (2π/3)/dx per axis, so the bound is about 1.35.
MAX_CFL = 1.0
CPU_CHUNK = 64  # samples generate() solves together on a CPU: small batches stay in cache
DEVICE_CHUNK = 1024  # the same on an accelerator


def _steps(duration: float, dt: float) -> int | None:
    """``duration / dt`` if it is a whole number (to round-off), else None."""
    ratio = duration / dt
    steps = round(ratio)
    return steps if abs(ratio - steps) <= 1e-9 * max(1.0, ratio) else None


class NavierStokesConfig(SourceConfig):
    """Decaying 2-D turbulence on a periodic square box.

    Attributes:
        grid: points per side ``N`` of the ``N × N`` grid; an even integer ≥ 8.
        frames: number of stored frames ``T`` (≥ 1).
        viscosity: kinematic viscosity ``ν`` in m²/s (≥ 0; 0 gives the Euler equations).
        dt: solver time step in s (> 0); it must keep the CFL number under ``MAX_CFL``.
        frame_interval: physical time between stored frames in s; a whole multiple of ``dt``.
        spinup: time in s evolved before the first stored frame, so that the random initial
            field organises into coherent vortices; a whole multiple of ``dt`` (0 allowed).
        peak_wavenumber: wavenumber ``k0`` at which the initial energy spectrum peaks, in
            waves per box (the physical wavenumber is ``2π k0 / L``); ``0 < k0 < N/3``.
        initial_rms: root-mean-square of the initial vorticity in 1/s (> 0).
        domain: side length ``L`` of the box in m (> 0).
    """

    grid: Int = Field(64, ge=8)  # points per side (even)
    frames: Int = Field(100, ge=1)  # stored frames
    viscosity: Number = Field(1e-3, ge=0.0)  # ν, m²/s
    dt: Number = Field(0.1, gt=0.0)  # solver step, s
    frame_interval: Number = Field(0.5, gt=0.0)  # time between stored frames, s (5 steps)
    spinup: Number = Field(5.0, ge=0.0)  # time before frame 0, s (50 steps)
    peak_wavenumber: Number = Field(4.0, gt=0.0)  # k0 of the initial energy spectrum, waves per box
    initial_rms: Number = Field(0.5, gt=0.0)  # rms of the initial vorticity, 1/s
    domain: Number = Field(2 * math.pi, gt=0.0)  # box side L, m

    @field_validator("grid")
    @classmethod
    def _even(cls, grid: int) -> int:
        if grid % 2:
            raise ValueError("expected an even number of points per side")
        return grid

    @field_validator("frame_interval", "spinup")
    @classmethod
    def _whole_steps(cls, value: float, info: ValidationInfo) -> float:
        dt = info.data.get("dt")
        steps = None if dt is None else _steps(value, dt)
        if dt is not None and (steps is None or (steps == 0 and info.field_name != "spinup")):
            zero = " (0 allowed)" if info.field_name == "spinup" else ""
            raise ValueError(f"expected a whole multiple of dt={dt!r}{zero}")
        return value

    @field_validator("peak_wavenumber")
    @classmethod
    def _resolved(cls, k0: float, info: ValidationInfo) -> float:
        grid = info.data.get("grid")
        if grid is not None and not k0 < grid / 3:
            raise ValueError(f"expected 0 < k0 < grid/3 = {grid / 3:.4g}")
        return k0

    @property
    def steps_per_frame(self) -> int:
        """Solver steps between two stored frames."""
        return _steps(self.frame_interval, self.dt)  # type: ignore[return-value]

    @property
    def spinup_steps(self) -> int:
        """Solver steps before the first stored frame."""
        return _steps(self.spinup, self.dt)  # type: ignore[return-value]


PRESETS: dict[str, NavierStokesConfig] = {
    # The paper's resolution (Sec. 4.2: 64×64, 100 frames; it uses 1152 samples; 545 solver steps
    # per sample).
    "paper": NavierStokesConfig(),
    # Small and quick: the quick start's data set.
    "quickstart": NavierStokesConfig(
        grid=32,
        frames=16,
        viscosity=1e-2,
        dt=0.1,
        frame_interval=0.3,
        spinup=2.0,
        peak_wavenumber=3.0,
        initial_rms=1.0,
    ),
}


class _Spectral:
    """Wavenumbers, de-aliasing mask and spectral multipliers of an ``N × N`` rfft2 grid."""

    def __init__(self, grid: int, domain: float, device: torch.device | str) -> None:
        f64 = torch.float64
        ny = torch.fft.fftfreq(grid, d=1.0 / grid, dtype=f64, device=device)[:, None]
        nx = torch.fft.rfftfreq(grid, d=1.0 / grid, dtype=f64, device=device)[None, :]
        shape = (grid, grid // 2 + 1)
        ky = ((2 * math.pi / domain) * ny).expand(shape)
        kx = ((2 * math.pi / domain) * nx).expand(shape)
        self.k2 = kx**2 + ky**2
        inv_k2 = torch.where(self.k2 > 0, 1.0 / torch.where(self.k2 > 0, self.k2, 1.0), 0.0)
        self.n_abs = torch.sqrt(nx**2 + ny**2)  # wavenumber magnitude in waves per box
        self.mask = ((ny.abs() < grid / 3) & (nx.abs() < grid / 3)).to(f64)  # 2/3 rule
        self.shape = (grid, grid)
        # ŵ -> (û, v̂): ψ̂ = ŵ/|k|², u = ∂ψ/∂y, v = −∂ψ/∂x; shape (2, N, N/2 + 1).
        self.to_velocity = torch.stack((1j * ky * inv_k2, -1j * kx * inv_k2))
        # ŵ -> de-aliased (û, v̂, (∂w/∂x)^, (∂w/∂y)^); shape (4, N, N/2 + 1).
        gradient = torch.stack((1j * kx, 1j * ky))
        self.to_advection = torch.cat((self.to_velocity, gradient)) * self.mask

    @staticmethod
    def _apply(multipliers: torch.Tensor, w_hat: torch.Tensor) -> torch.Tensor:
        """``(K, N, M)`` multipliers times a ``(…, N, M)`` spectrum -> ``(K, …, N, M)``."""
        k, n, m = multipliers.shape
        return multipliers.view(k, *([1] * (w_hat.ndim - 2)), n, m) * w_hat

    def velocity(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Stacked real-space velocity ``(2, …, H, W)`` of the spectrum ``w_hat``."""
        return torch.fft.irfft2(self._apply(self.to_velocity, w_hat), s=self.shape)

    def advection(self, w_hat: torch.Tensor) -> torch.Tensor:
        """De-aliased spectrum of ``−u·∇w`` for the spectrum ``w_hat`` ``(…, N, N/2 + 1)``."""
        u, v, wx, wy = torch.fft.irfft2(self._apply(self.to_advection, w_hat), s=self.shape)
        return torch.fft.rfft2(u * wx + v * wy) * -self.mask


@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run CPU work on one intra-op thread, then restore the caller's setting.

    The FFTs here are small: a second thread gains little, and on a busy machine the threads'
    waiting costs many times the work itself.
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check_grid(w: torch.Tensor, grid: int | None = None) -> None:
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"expected a square (…, H, W) field, got shape {tuple(w.shape)}")
    if grid is not None and w.shape[-1] != grid:
        raise ValueError(f"field is {w.shape[-1]}×{w.shape[-1]} but the config grid is {grid}")


def velocity(w: torch.Tensor, domain: float = 2 * math.pi) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity ``(u, v) = (∂ψ/∂y, −∂ψ/∂x)`` of vorticity ``w`` with ``−Δψ = w``.

    ``w`` is ``(…, H, W)`` with ``H == W`` on the box of side ``domain``; its mean is ignored.
    Returns ``u`` (x-velocity) and ``v`` (y-velocity), each ``(…, H, W)`` in ``w``'s dtype.
    """
    _check_grid(w)
    ops = _Spectral(w.shape[-1], domain, w.device)
    with _one_thread(w.device):
        u, v = ops.velocity(torch.fft.rfft2(w.to(torch.float64)))
    return u.to(w.dtype), v.to(w.dtype)


def kinetic_energy(w: torch.Tensor, domain: float = 2 * math.pi) -> torch.Tensor:
    """Box mean of ``½(u² + v²)`` for vorticity ``w`` of shape ``(…, H, W)``; returns ``(…)``."""
    u, v = velocity(w.to(torch.float64), domain)
    return (0.5 * (u**2 + v**2)).mean(dim=(-2, -1)).to(w.dtype)


def random_vorticity(n: int, cfg: NavierStokesConfig, generator: torch.Generator) -> torch.Tensor:
    """``n`` random initial vorticity fields ``(n, H, W)`` float64, on ``generator.device``.

    Each field has random Fourier phases and the amplitude of the energy spectrum
    ``E(k) ∝ k⁴ exp(−2 (k/k0)²)`` (peak at ``k = k0 = cfg.peak_wavenumber``, in waves per
    box), i.e. ``|ŵ(k)| ∝ k^{5/2} exp(−(k/k0)²)``; the mean mode is zero, modes outside the
    2/3-rule band are removed, and each sample is scaled to rms ``cfg.initial_rms``.
    """
    if n < 0:
        raise ValueError(f"n={n!r} must be ≥ 0")
    ops = _Spectral(cfg.grid, cfg.domain, generator.device)
    noise = torch.randn(
        (n, cfg.grid, cfg.grid), generator=generator, dtype=torch.float64, device=generator.device
    )
    noise_hat = torch.fft.rfft2(noise)
    phase = noise_hat / noise_hat.abs().clamp_min(1e-300)  # unit modulus, Hermitian symmetric
    k = ops.n_abs
    amplitude = k**2.5 * torch.exp(-((k / cfg.peak_wavenumber) ** 2)) * ops.mask
    w = torch.fft.irfft2(phase * amplitude, s=ops.shape)
    rms = w.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()
    return w * (cfg.initial_rms / rms)


def _cfl(w_hat: torch.Tensor, ops: _Spectral, cfg: NavierStokesConfig) -> float:
    u, v = ops.velocity(w_hat)
    return float((u.abs() + v.abs()).max()) * cfg.dt * cfg.grid / cfg.domain


def solve(w0: torch.Tensor, cfg: NavierStokesConfig) -> torch.Tensor:
    """Evolve vorticity ``w0`` ``(B, H, W)`` and return the frames ``(B, T, H, W)`` float64.

    Frame 0 is at time ``cfg.spinup``, then one frame every ``cfg.frame_interval``
    (``T = cfg.frames``). Raises ValueError if the CFL number ``max(|u|+|v|)·dt/dx`` exceeds
    ``MAX_CFL`` at the start or at any stored frame, or if the field stops being finite.
    On a CPU it runs on one intra-op thread (see ``_one_thread``); parallelise over samples.
    """
    if w0.ndim != 3:
        raise ValueError(f"w0 must be (B, H, W), got shape {tuple(w0.shape)}")
    _check_grid(w0, cfg.grid)
    ops = _Spectral(cfg.grid, cfg.domain, w0.device)
    decay = torch.exp(-cfg.viscosity * ops.k2 * cfg.dt)  # exact viscous factor over dt
    half = torch.exp(-cfg.viscosity * ops.k2 * cfg.dt / 2)
    dt = cfg.dt

    def step(w_hat: torch.Tensor) -> torch.Tensor:
        # Lawson IF-RK4 for v = exp(ν|k|²t) ŵ, written back in terms of ŵ.
        a = dt * ops.advection(w_hat)
        b = dt * ops.advection(half * (w_hat + a / 2))
        c = dt * ops.advection(half * w_hat + b / 2)
        d = dt * ops.advection(decay * w_hat + half * c)
        return decay * w_hat + (decay * a + 2 * half * (b + c) + d) / 6

    def check(w_hat: torch.Tensor, t: float) -> None:
        cfl = _cfl(w_hat, ops, cfg)
        if not math.isfinite(cfl):
            raise ValueError(f"vorticity became non-finite by t={t:.4g} s; reduce dt={cfg.dt!r}")
        if cfl > MAX_CFL:
            raise ValueError(
                f"CFL number {cfl:.3g} > {MAX_CFL} at t={t:.4g} s: dt={cfg.dt!r} is too large "
                f"for this flow (grid={cfg.grid}, initial_rms={cfg.initial_rms!r}); reduce dt"
            )

    frames = []
    with _one_thread(w0.device):
        w_hat = torch.fft.rfft2(w0.to(torch.float64))
        check(w_hat, 0.0)
        for _ in range(cfg.spinup_steps):
            w_hat = step(w_hat)
        for i in range(cfg.frames):
            if i:
                for _ in range(cfg.steps_per_frame):
                    w_hat = step(w_hat)
            check(w_hat, cfg.spinup + i * cfg.frame_interval)
            frames.append(torch.fft.irfft2(w_hat, s=ops.shape))
    return torch.stack(frames, dim=1)


def generate(cfg: NavierStokesConfig, n: int, generator: torch.Generator) -> Simulation:
    """``n`` decaying-turbulence trajectories: fields ``(n, T, 1, H, W)`` float32.

    Initial fields come from :func:`random_vorticity` (all drawn first, so the output
    depends only on ``cfg`` and the generator's state) and are solved in chunks.
    """
    w0 = random_vorticity(n, cfg, generator)
    chunk = CPU_CHUNK if w0.device.type == "cpu" else DEVICE_CHUNK
    chunks = [solve(w0[i : i + chunk], cfg).float() for i in range(0, n, chunk)]
    if chunks:
        fields = torch.cat(chunks)
    else:
        fields = torch.zeros((0, cfg.frames, cfg.grid, cfg.grid), dtype=torch.float32)
    coords = np.arange(cfg.grid) * (cfg.domain / cfg.grid)
    return Simulation(
        fields=fields[:, :, None],
        params={"viscosity": torch.full((n,), cfg.viscosity, dtype=torch.float64)},
        channels=CHANNELS,
        time=cfg.spinup + np.arange(cfg.frames) * cfg.frame_interval,
        y=coords.copy(),
        x=coords,
        units={"vorticity": "1/s", "time": "s", "x": "m", "y": "m", "viscosity": "m^2/s"},
    )
