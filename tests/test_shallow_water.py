"""Rotating shallow water: analytic steady state, invariants, determinism, validation, metric."""

from __future__ import annotations

import math

import pytest
import torch

from incdyn.datasets.metrics.physics import shallow_water_residual
from incdyn.datasets.pde import shallow_water as sw

F64 = torch.float64


def _params(*values: float) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor([v], dtype=F64) for v in values)


def _zonal_jet(*, rows: int, cols: int, amplitude: float, f: float, g: float, balanced: bool):
    """C-grid state (1, 3, rows, cols): h = A sin(y) on [0, 2π)², u geostrophic or at rest."""
    dy = 2 * math.pi / rows
    y = (torch.arange(rows, dtype=F64) + 0.5) * dy
    h = (amplitude * torch.sin(y))[:, None].expand(rows, cols)[None].clone()
    uv = sw.geostrophic_velocity(h, *_params(f, g), dy, dy)
    if not balanced:
        uv.zero_()
    return torch.cat((uv, h[:, None]), dim=1), dy


def test_geostrophic_jet_stays_steady():
    # h = A sin(y), u = −(g/f) ∂h/∂y, v = 0 is an exact steady state of the nonlinear equations.
    # On the C-grid it is steady up to the O(A·dy²) mismatch of the D-weighted mass flux in
    # the PV term: the relative drift is ≈ 6e-4·A/H (5e-8 at A = 1e-4 H); we allow 1e-3.
    f, g, H, amplitude = 1.0, 1.0, 1.0, 0.1
    state0, dy = _zonal_jet(rows=64, cols=4, amplitude=amplitude, f=f, g=g, balanced=True)
    y = (torch.arange(64, dtype=F64) + 0.5) * dy
    u_exact = -(g / f) * amplitude * torch.cos(y)  # −(g/f) ∂h/∂y
    assert torch.allclose(state0[0, 0, :, 0], u_exact, rtol=0, atol=1e-3 * amplitude)
    assert state0[:, 1].abs().max() == 0
    kw = dict(dt=0.05, dx=dy, dy=dy, steps_per_frame=40, frames=6)  # 200 steps, t = 10
    traj = sw.solve(state0, f, g, H, **kw)
    drift = (traj - state0[:, None]).abs().amax(dim=(0, 1, 3, 4))  # per channel
    scale = amplitude  # |u|, |h| ≤ A here
    assert (drift / scale).max() < 1e-3
    # Without the balancing velocity the same h adjusts: changes of order A.
    rest, _ = _zonal_jet(rows=64, cols=4, amplitude=amplitude, f=f, g=g, balanced=False)
    moved = (sw.solve(rest, f, g, H, **kw)[:, :, 2] - rest[:, None, 2]).abs().max()
    assert moved > 0.5 * amplitude


def _random_run(*, steps: int, seed: int = 0):
    cfg = sw.ShallowWaterConfig(grid=32, frames=2, dt=0.05, frame_interval=0.05 * steps)
    state0, p = sw.random_initial_state(cfg, 3, torch.Generator().manual_seed(seed))
    dx = cfg.domain / cfg.grid
    traj = sw.solve(state0, p["f"], p["g"], p["H"], dt=cfg.dt, dx=dx, dy=dx,
                    steps_per_frame=steps, frames=2)  # fmt: skip
    return traj, p


def test_mass_conserved_to_round_off():
    traj, _ = _random_run(steps=100)
    mass = sw.total_mass(traj[:, :, 2])
    assert (mass[:, 1] - mass[:, 0]).abs().max() < 1e-12 * traj[:, 0, 2].abs().sum(
        dim=(-2, -1)
    ).max()


def test_energy_conserved_without_dissipation():
    # The semi-discrete scheme conserves total_energy exactly; RK4 at dt = 0.05 (Courant 0.65)
    # drifts it by ~1e-6 relative over 100 steps. Stated tolerance: 1e-5.
    traj, p = _random_run(steps=100)
    u, v, h = traj.unbind(dim=2)  # (B, 2, N, N)
    energy = torch.stack(
        [sw.total_energy(u[:, k], v[:, k], h[:, k], p["g"], p["H"]) for k in range(2)], dim=1
    )
    drift = ((energy[:, 1] - energy[:, 0]) / energy[:, 0]).abs()
    assert drift.max() < 1e-5


def test_generate_shapes_params_and_coordinates():
    cfg = sw.PRESETS["small"]
    sim = sw.generate(cfg, 3, torch.Generator().manual_seed(0))
    assert sim.fields.shape == (3, 16, 3, 32, 32) and sim.fields.dtype == torch.float32
    assert sim.channels == ("u", "v", "h") and torch.isfinite(sim.fields).all()
    for name, rng in (("f", cfg.f_range), ("g", cfg.g_range), ("H", cfg.H_range)):
        assert sim.params[name].shape == (3,)
        assert ((sim.params[name] >= rng[0]) & (sim.params[name] <= rng[1])).all()
    dx = cfg.domain / 32
    assert sim.x[0] == pytest.approx(dx / 2) and sim.y[-1] == pytest.approx(cfg.domain - dx / 2)
    assert sim.time[1] == pytest.approx(cfg.frame_interval) and sim.time[0] == 0
    assert sim.fields[:, 0, :2].abs().max() == 0  # "rest" initial velocities
    assert sim.fields[:, 1:, :2].abs().max() > 0  # then adjustment sets the fluid moving
    assert sim.fields[:, 0, 2].mean(dim=(-2, -1)).abs().max() < 1e-6  # H is the mean depth
    assert set(sim.units) >= {"u", "v", "h", "f", "g", "H", "time", "x", "y"}


def test_geostrophic_initial_velocity_is_linearly_balanced():
    # The "geostrophic" option balances the linear terms exactly; at small amplitude (where the
    # nonlinear terms, O(A²), are negligible) the velocity tendency nearly vanishes.
    base = sw.PRESETS["small"].model_copy(update={"frames": 1, "amplitude_range": (1e-4, 2e-4)})
    dx = base.domain / base.grid
    tendencies = {}
    for ic in sw.IC_VELOCITIES:
        cfg = base.model_copy(update={"ic_velocity": ic})
        state, p = sw.random_initial_state(cfg, 4, torch.Generator().manual_seed(1))
        tend = sw.tendency(state, p["f"], p["g"], p["H"], dx, dx)
        tendencies[ic] = tend[:, :2].abs().amax(dim=(1, 2, 3))
    assert (tendencies["geostrophic"] < 1e-2 * tendencies["rest"]).all()


def test_same_seed_same_output_and_chunking_does_not_matter():
    cfg = sw.PRESETS["small"].model_copy(update={"frames": 4})
    a = sw.generate(cfg, 5, torch.Generator().manual_seed(7))
    b = sw.generate(cfg, 5, torch.Generator().manual_seed(7), chunk=2)
    c = sw.generate(cfg, 5, torch.Generator().manual_seed(8))
    assert torch.equal(a.fields, b.fields)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert not torch.equal(a.fields, c.fields)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grid", 4),
        ("frames", 0),
        ("dt", -0.1),
        ("frame_interval", 0.05),  # not a multiple of dt = 0.1/3
        ("domain", 0.0),
        ("f_range", (2.0, 1.0)),
        ("g_range", (0.0, 1.0)),
        ("H_range", (1.0,)),
        ("amplitude_range", (0.1, 0.5)),  # 3 bumps · 0.5 ≥ 1: negative depth possible
        ("width_range", (-1.0, 1.0)),
        ("bumps", 0),
        ("ic_velocity", "spin"),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"ShallowWaterConfig\n{field}\b"):
        sw.ShallowWaterConfig(**{field: value})


def test_config_rejects_unstable_dt_and_unbalanced_zero_f():
    with pytest.raises(ValueError, match=r"dt=0\.05: Courant number 1\.3"):
        sw.ShallowWaterConfig(dt=0.05, frame_interval=0.1)  # Courant 1.3 on the 64 grid
    with pytest.raises(ValueError, match=r"f_range=\(0\.0, 1\.0\): expected f > 0"):
        sw.ShallowWaterConfig(f_range=(0.0, 1.0), ic_velocity="geostrophic")
    assert sw.ShallowWaterConfig(f_range=(0.0, 1.0)).f_range == (0.0, 1.0)  # f = 0 at rest: ok


def _blur(fields: torch.Tensor, sigma_cells: float) -> torch.Tensor:
    k = torch.fft.fftfreq(fields.shape[-1])
    kernel = torch.exp(-2 * (math.pi * sigma_cells) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    return torch.fft.ifft2(torch.fft.fft2(fields) * kernel).real


def test_residual_of_truth_is_far_below_corrupted_trajectories():
    # Truth: O(dt_frame², dx²) truncation only (~1e-8 at 64², frame interval 0.1). Corrupting
    # 20 % of the points raises it ≳ 100× (noise of 10 % of the channel std, or a Gaussian
    # blur of 2 cells as an inpainting would leave); we require 10×.
    cfg = sw.PRESETS["paper"].model_copy(update={"frames": 6})
    sim = sw.generate(cfg, 4, torch.Generator().manual_seed(3))
    x, p, dx = sim.fields, sim.params, cfg.domain / cfg.grid
    residual = lambda y: shallow_water_residual(  # noqa: E731
        y, p["f"], p["g"], p["H"], cfg.frame_interval, dx, dx
    )
    truth = residual(x)
    assert truth.shape == (4,) and truth.dtype == F64
    gen = torch.Generator().manual_seed(0)
    hit = torch.rand(*x.shape[:2], 1, *x.shape[3:], generator=gen) < 0.2
    std = x.std(dim=(1, 3, 4), keepdim=True)
    noisy = torch.where(hit, x + 0.1 * std * torch.randn(x.shape, generator=gen), x)
    blurred = torch.where(hit, _blur(x, 2.0), x)
    assert (residual(noisy) > 10 * truth).all()
    assert (residual(blurred) > 10 * truth).all()


def test_residual_needs_three_frames_and_three_channels():
    one = torch.ones(1, dtype=F64)
    with pytest.raises(ValueError, match="3 frames"):
        shallow_water_residual(torch.zeros(1, 2, 3, 8, 8), one, one, one, 0.1, 0.1, 0.1)
    with pytest.raises(ValueError, match="N, T, 3, H, W"):
        shallow_water_residual(torch.zeros(1, 4, 2, 8, 8), one, one, one, 0.1, 0.1, 0.1)
    rest = torch.zeros(1, 4, 3, 8, 8)  # the fluid at rest is an exact solution
    assert shallow_water_residual(rest, one, one, one, 0.1, 0.1, 0.1).item() == 0
