"""Linear advection: analytic translation, mass, determinism, validation, forward-MSE metric."""

from __future__ import annotations

import math

import pytest
import torch

from incdyn.datasets.metrics.physics import advection_forward_mse
from incdyn.datasets.pde import advection as adv

F64 = torch.float64


def _sine(*, grid: int, domain: tuple[float, float], shift: tuple[float, float] = (0.0, 0.0)):
    """``sin(2·2πx/L_x + 3·2πy/L_y)`` on the ``grid × grid`` nodes, moved by ``shift = (y, x)``."""
    (ly, lx), (sy, sx) = domain, shift
    y = (torch.arange(grid, dtype=F64) * ly / grid)[:, None] - sy
    x = (torch.arange(grid, dtype=F64) * lx / grid)[None, :] - sx
    return torch.sin(2 * 2 * math.pi * x / lx + 3 * 2 * math.pi * y / ly)


def test_sine_wave_is_translated_to_its_analytic_position():
    domain = (3.0, 2.0)  # (L_y, L_x): non-square, and shifts that are not whole cells
    ax = torch.tensor([0.7, -1.3], dtype=F64)
    ay = torch.tensor([0.25, 2.1], dtype=F64)
    times = torch.tensor([0.0, 0.37, 1.9], dtype=F64)
    c0 = _sine(grid=32, domain=domain).expand(2, 32, 32)
    out = adv.advect(c0, ax, ay, times, domain)
    assert out.shape == (2, 3, 32, 32) and out.dtype == F64
    for b in range(2):
        for i, t in enumerate(times.tolist()):
            exact = _sine(grid=32, domain=domain, shift=(ay[b].item() * t, ax[b].item() * t))
            assert torch.allclose(out[b, i], exact, rtol=0, atol=1e-12)


def test_mass_is_conserved():
    sim = adv.generate(adv.PRESETS["small"], 4, torch.Generator().manual_seed(0))
    mass = sim.fields.double().sum(dim=(-2, -1))  # (N, T, 1)
    assert (mass - mass[:, :1]).abs().max() < 1e-3  # float32 round-off over 32² points


def test_generate_shapes_params_and_determinism():
    cfg = adv.PRESETS["small"]
    a = adv.generate(cfg, 5, torch.Generator().manual_seed(3))
    b = adv.generate(cfg, 5, torch.Generator().manual_seed(3))
    c = adv.generate(cfg, 5, torch.Generator().manual_seed(4))
    assert a.fields.shape == (5, 16, 1, 32, 32) and a.fields.dtype == torch.float32
    assert a.channels == ("c",) and set(a.params) == {"ax", "ay"}
    assert torch.equal(a.fields, b.fields) and torch.equal(a.params["ax"], b.params["ax"])
    assert not torch.equal(a.fields, c.fields)
    speed = torch.hypot(a.params["ax"], a.params["ay"])
    assert ((speed >= cfg.speed_range[0] - 1e-12) & (speed <= cfg.speed_range[1] + 1e-12)).all()
    first = a.fields[:, 0, 0].double()
    assert first.mean(dim=(-2, -1)).abs().max() < 1e-6
    assert torch.allclose(first.std(dim=(-2, -1), correction=0), torch.ones(5, dtype=F64))
    assert a.time[1] == pytest.approx(cfg.frame_interval) and len(a.x) == 32


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grid", 2),
        ("frames", 0),
        ("frame_interval", 0.0),
        ("domain", -1.0),
        ("speed_range", (2.0, 1.0)),
        ("speed_range", (-1.0, 1.0)),
        ("max_wavenumber", 32),
        ("spectral_decay", -1.0),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"AdvectionConfig\n{field}\n"):
        adv.AdvectionConfig(**{field: value})


def test_forward_mse_is_zero_for_the_truth_and_grows_with_the_error():
    cfg = adv.PRESETS["small"]
    sim = adv.generate(cfg, 3, torch.Generator().manual_seed(1))
    truth = sim.fields[:, :, 0]
    args = (sim.params["ax"], sim.params["ay"], torch.from_numpy(sim.time), cfg.domain)
    assert advection_forward_mse(truth[:, 0], truth, *args).max() < 1e-12
    # A smooth error e keeps its norm under exact transport, so the forward MSE is mean(e²).
    error = adv.random_initial_field(cfg, 3, torch.Generator().manual_seed(2))
    previous = torch.zeros(3, dtype=F64)
    for eps in (0.01, 0.1, 0.3):
        mse = advection_forward_mse(truth[:, 0] + eps * error, truth, *args)
        assert mse.shape == (3,) and (mse > previous).all()
        assert torch.allclose(mse, torch.full((3,), eps**2, dtype=F64), rtol=1e-3)
        previous = mse


def test_forward_mse_checks_shapes():
    with pytest.raises(ValueError, match="first_frame"):
        advection_forward_mse(torch.zeros(2, 8, 8), torch.zeros(3, 4, 8, 8), 0, 0, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="times"):
        advection_forward_mse(torch.zeros(2, 8, 8), torch.zeros(2, 4, 8, 8), 0, 0, [0, 1])
