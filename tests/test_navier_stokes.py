"""The Navier–Stokes generator against analytic solutions and conservation laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from incdyn.datasets.pde.navier_stokes import (
    CHANNELS,
    PRESETS,
    NavierStokesConfig,
    generate,
    kinetic_energy,
    random_vorticity,
    solve,
    velocity,
)


def small_config(**overrides: object) -> NavierStokesConfig:
    """A 32×32 configuration that runs in well under a second."""
    base = {
        "grid": 32,
        "frames": 5,
        "viscosity": 1e-2,
        "dt": 0.1,
        "frame_interval": 0.2,
        "spinup": 0.2,
        "peak_wavenumber": 3.0,
        "initial_rms": 1.0,
    }
    return NavierStokesConfig(**{**base, **overrides})


def grid_xy(grid: int, domain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates ``(y, x)``, each ``(grid, grid)``; axis −2 is y, axis −1 is x."""
    coords = torch.arange(grid, dtype=torch.float64) * (domain / grid)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return y, x


def taylor_green(*, grid: int, domain: float, waves: int) -> tuple[torch.Tensor, float]:
    """``w = 2k cos(kx) cos(ky)`` with ``k = 2π·waves/L``; returns ``(w (1, N, N), k)``."""
    k = 2 * math.pi * waves / domain
    y, x = grid_xy(grid, domain)
    return (2 * k * torch.cos(k * x) * torch.cos(k * y))[None], k


def spectral_derivatives(f: torch.Tensor, domain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂f/∂x, ∂f/∂y)`` of a periodic ``(…, N, N)`` field, written independently of the module."""
    n = f.shape[-1]
    k = torch.fft.fftfreq(n, d=domain / n, dtype=torch.float64) * 2 * math.pi
    f_hat = torch.fft.fft2(f.to(torch.float64))
    dx = torch.fft.ifft2(1j * k[None, :] * f_hat).real
    dy = torch.fft.ifft2(1j * k[:, None] * f_hat).real
    return dx, dy


# 1. Taylor–Green: the nonlinear term vanishes and w decays as exp(−2νk²t).
@pytest.mark.parametrize(
    ("domain", "waves", "cfg_overrides"),
    [
        (2 * math.pi, 3, {"viscosity": 0.05, "dt": 0.05, "frame_interval": 0.5, "spinup": 0.25}),
        (1.0, 2, {"viscosity": 3e-3, "dt": 0.01, "frame_interval": 0.2, "spinup": 0.05}),
    ],
)
def test_taylor_green_decays_exactly(domain: float, waves: int, cfg_overrides: dict) -> None:
    cfg = small_config(domain=domain, frames=6, **cfg_overrides)
    w0, k = taylor_green(grid=cfg.grid, domain=domain, waves=waves)
    frames = solve(w0, cfg)
    assert frames.shape == (1, cfg.frames, cfg.grid, cfg.grid)
    assert frames.dtype == torch.float64
    times = cfg.spinup + cfg.frame_interval * torch.arange(cfg.frames, dtype=torch.float64)
    expected = w0[:, None] * torch.exp(-2 * cfg.viscosity * k**2 * times)[None, :, None, None]
    assert expected[0, -1].abs().max() < 0.7 * w0.abs().max()  # the decay is substantial
    error = (frames - expected).abs().amax(dim=(-2, -1)) / expected.abs().amax(dim=(-2, -1))
    assert error.max() < 1e-6


def test_taylor_green_velocity_and_energy_are_analytic() -> None:
    w, k = taylor_green(grid=16, domain=2 * math.pi, waves=2)
    y, x = grid_xy(16, 2 * math.pi)
    u, v = velocity(w)
    # ψ = cos(kx) cos(ky)/k, u = ∂ψ/∂y, v = −∂ψ/∂x.
    torch.testing.assert_close(u[0], -torch.cos(k * x) * torch.sin(k * y), atol=1e-12, rtol=0)
    torch.testing.assert_close(v[0], torch.sin(k * x) * torch.cos(k * y), atol=1e-12, rtol=0)
    torch.testing.assert_close(kinetic_energy(w), torch.tensor([0.25], dtype=torch.float64))


def test_tendency_matches_independent_right_hand_side() -> None:
    # A band-limited field (|n| ≤ 3 on a 32 grid) has no aliasing, so the solver's tendency must
    # equal −u·∇w + νΔw computed directly; a central difference over ±dt checks it to O(dt²).
    generator = torch.Generator().manual_seed(5)
    cfg = small_config(dt=1e-3, frame_interval=1e-3, spinup=0.0, frames=3)
    y, x = grid_xy(cfg.grid, cfg.domain)
    w0 = torch.zeros(1, cfg.grid, cfg.grid, dtype=torch.float64)
    for nx, ny in [(1, 0), (0, 1), (1, 2), (2, -1), (3, 1), (-2, 2)]:
        amplitude, phase = torch.rand(2, generator=generator, dtype=torch.float64)
        w0 += 3 * amplitude * torch.cos(nx * x + ny * y + 2 * math.pi * phase)
    frames = solve(w0, cfg)
    tendency = (frames[:, 2] - frames[:, 0]) / (2 * cfg.dt)
    w = frames[:, 1]
    u, v = velocity(w, cfg.domain)
    wx, wy = spectral_derivatives(w, cfg.domain)
    wxx, _ = spectral_derivatives(wx, cfg.domain)
    _, wyy = spectral_derivatives(wy, cfg.domain)
    rhs = -(u * wx + v * wy) + cfg.viscosity * (wxx + wyy)
    assert (u * wx + v * wy).abs().max() > 0.1 * rhs.abs().max()  # advection matters here
    assert (tendency - rhs).abs().max() < 1e-5 * rhs.abs().max()


# 2. Kinetic energy never grows in decaying turbulence.
def test_energy_decays_at_every_step() -> None:
    cfg = small_config(frames=31, frame_interval=0.1, spinup=0.0)  # one frame per solver step
    w0 = random_vorticity(4, cfg, torch.Generator().manual_seed(0))
    energy = kinetic_energy(solve(w0, cfg))
    assert energy.shape == (4, cfg.frames)
    assert (energy.diff(dim=1) < 0).all()
    assert (energy[:, -1] < 0.95 * energy[:, 0]).all()


def test_energy_decays_across_quickstart_frames() -> None:
    cfg = PRESETS["quickstart"]
    sim = generate(cfg, 4, torch.Generator().manual_seed(1))
    energy = kinetic_energy(sim.fields[:, :, 0].double(), cfg.domain)
    assert (energy.diff(dim=1) < 0).all()


def test_inviscid_flow_conserves_energy_and_enstrophy() -> None:
    # The 2/3-rule Galerkin truncation conserves both; what remains is the RK4 time error.
    cfg = small_config(viscosity=0.0, frames=21, frame_interval=0.1, spinup=0.0)
    frames = solve(random_vorticity(3, cfg, torch.Generator().manual_seed(2)), cfg)
    energy = kinetic_energy(frames)
    enstrophy = frames.pow(2).mean(dim=(-2, -1))
    assert ((energy / energy[:, :1] - 1).abs() < 1e-5).all()
    assert ((enstrophy / enstrophy[:, :1] - 1).abs() < 1e-4).all()
    assert (frames[:, -1] - frames[:, 0]).abs().max() > 0.1 * frames.abs().max()  # it moved


# 3. Velocity from vorticity: divergence-free, and its curl gives back w.
def test_velocity_is_divergence_free_and_its_curl_is_vorticity() -> None:
    domain = 3.0
    cfg = small_config(domain=domain)
    w = random_vorticity(3, cfg, torch.Generator().manual_seed(3))
    u, v = velocity(w, domain)
    assert u.shape == v.shape == w.shape
    ux, uy = spectral_derivatives(u, domain)
    vx, vy = spectral_derivatives(v, domain)
    scale = w.abs().max()
    assert (ux + vy).abs().max() < 1e-12 * scale
    assert (vx - uy - w).abs().max() < 1e-12 * scale


def test_velocity_keeps_dtype_and_leading_dims() -> None:
    w = random_vorticity(6, small_config(), torch.Generator().manual_seed(4)).float()
    u, v = velocity(w.view(2, 3, 32, 32))
    assert u.shape == v.shape == (2, 3, 32, 32)
    assert u.dtype == v.dtype == torch.float32
    assert kinetic_energy(w.view(2, 3, 32, 32)).shape == (2, 3)


def test_random_vorticity_statistics() -> None:
    cfg = small_config(initial_rms=2.5, peak_wavenumber=4.0)
    w = random_vorticity(5, cfg, torch.Generator().manual_seed(6))
    assert w.shape == (5, 32, 32) and w.dtype == torch.float64
    torch.testing.assert_close(w.mean(dim=(-2, -1)), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(w.pow(2).mean(dim=(-2, -1)).sqrt(), torch.full((5,), 2.5).double())
    # The shell-summed energy spectrum E(k) = Σ_shell |ŵ|²/k² peaks at k0 = 4 waves per box.
    w_hat = torch.fft.fft2(w)
    n = torch.fft.fftfreq(32, d=1 / 32, dtype=torch.float64)
    k = torch.sqrt(n[:, None] ** 2 + n[None, :] ** 2)
    density = w_hat.abs().pow(2).mean(dim=0) / torch.where(k > 0, k, 1.0) ** 2
    shells = torch.zeros(24, dtype=torch.float64).index_add_(
        0, k.round().long().flatten(), density.flatten()
    )
    assert int(shells.argmax()) == 4


def test_solve_starts_at_spinup_and_guards_cfl() -> None:
    cfg = small_config(spinup=0.0)
    w0 = random_vorticity(2, cfg, torch.Generator().manual_seed(7))
    torch.testing.assert_close(solve(w0, cfg)[:, 0], w0)
    with pytest.raises(ValueError, match="CFL"):
        solve(w0, cfg.model_copy(update={"dt": 1.0, "frame_interval": 1.0}))
    with pytest.raises(ValueError, match="grid"):
        solve(w0[:, :16, :16], cfg)


# 4. Determinism.
def test_generate_is_deterministic_in_the_seed() -> None:
    cfg = small_config(grid=16, frames=3)
    first = generate(cfg, 3, torch.Generator().manual_seed(11))
    again = generate(cfg, 3, torch.Generator().manual_seed(11))
    other = generate(cfg, 3, torch.Generator().manual_seed(12))
    assert torch.equal(first.fields, again.fields)
    assert not torch.allclose(first.fields, other.fields)


# 5. Configuration validation.
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grid", 6),
        ("grid", 33),
        ("grid", 32.0),
        ("frames", 0),
        ("viscosity", -1e-3),
        ("viscosity", float("nan")),
        ("dt", 0.0),
        ("frame_interval", 0.25),  # not a multiple of dt = 0.1
        ("frame_interval", -0.2),
        ("spinup", 0.05),
        ("spinup", -0.1),
        ("peak_wavenumber", 0.0),
        ("peak_wavenumber", 11.0),  # ≥ grid/3: outside the de-aliased band
        ("initial_rms", -1.0),
        ("domain", 0.0),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"NavierStokesConfig\n{field}\n") as error:
        small_config(**{field: value})
    assert repr(value) in str(error.value)


def test_presets_are_valid_and_sized() -> None:
    assert {"paper", "quickstart"} <= set(PRESETS)
    paper, quick = PRESETS["paper"], PRESETS["quickstart"]
    assert (paper.grid, paper.frames) == (64, 100)
    assert (quick.grid, quick.frames) == (32, 16)
    for cfg in PRESETS.values():
        assert NavierStokesConfig.model_validate(cfg.model_dump()) == cfg
        assert cfg.steps_per_frame >= 1 and cfg.spinup_steps >= 0


# 6. The Simulation contract.
def test_generate_returns_documented_simulation() -> None:
    cfg = small_config(frames=4, spinup=0.4, frame_interval=0.3)
    n = 3
    sim = generate(cfg, n, torch.Generator().manual_seed(0))
    assert sim.fields.shape == (n, cfg.frames, 1, cfg.grid, cfg.grid)
    assert sim.fields.dtype == torch.float32
    assert torch.isfinite(sim.fields).all()
    assert sim.channels == CHANNELS == ("vorticity",)
    np.testing.assert_allclose(sim.time, [0.4, 0.7, 1.0, 1.3])
    np.testing.assert_allclose(sim.x, np.arange(cfg.grid) * 2 * np.pi / cfg.grid)
    np.testing.assert_allclose(sim.y, sim.x)
    assert set(sim.params) == {"viscosity"}
    assert sim.params["viscosity"].shape == (n,)
    assert torch.all(sim.params["viscosity"] == cfg.viscosity)
    assert {"vorticity", "time", "x", "y", "viscosity"} <= set(sim.units)
    # Frame 0 is the random field evolved for `spinup`, from the same generator stream.
    w0 = random_vorticity(n, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sim.fields[:, :, 0], solve(w0, cfg).float())
