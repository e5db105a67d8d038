"""FNO backbone (models/backbones/fno.py): the UNet's interface on every grid, zero start, equivariance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from incdyn.models.backbones.fno import FNO
from incdyn.models.denoiser import Denoiser
from incdyn.models.schedule import VPSchedule


def _inputs(*, batch: int, channels: int, frames: int, h: int, w: int, seed: int = 0):
    """A network input ``[ctx ⊙ x_t, ctx]`` with a random static pixel mask, and noise labels."""
    g = torch.Generator().manual_seed(seed)
    xt = torch.randn(batch, channels, frames, h, w, generator=g)
    mask = (torch.rand(batch, 1, 1, h, w, generator=g) < 0.5).float().expand_as(xt)
    return torch.cat([xt * mask, mask], dim=1), torch.randn(batch, generator=g)


def _randomize_output(net: FNO, seed: int = 0) -> FNO:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.out.weight.copy_(0.1 * torch.randn(net.out.weight.shape, generator=g))
        net.out.bias.copy_(0.1 * torch.randn(net.out.bias.shape, generator=g))
    return net


@pytest.mark.parametrize("padding_mode", ["circular", "zeros"])
@pytest.mark.parametrize("grid", [(32, 32), (64, 64), (64, 32), (27, 27), (5, 7)])
def test_shapes_and_zero_output_at_init(grid, padding_mode):
    h, w = grid
    torch.manual_seed(0)
    net = FNO(channels=2, frames=3, width=8, modes=12, layers=2, padding_mode=padding_mode)
    x, label = _inputs(batch=2, channels=2, frames=3, h=h, w=w)
    y = net(x, label)
    assert y.shape == (2, 2, 3, h, w)
    assert torch.equal(y, torch.zeros_like(y))
    y = _randomize_output(net)(x, label)
    assert torch.isfinite(y).all() and y.abs().max() > 0


def test_gradients_flow():
    torch.manual_seed(0)
    net = FNO(channels=1, frames=2, width=8, modes=4, layers=3)
    x, label = _inputs(batch=2, channels=1, frames=2, h=16, w=16)
    net(x, label).square().sum().backward()  # output 0: only the output layer learns at first
    assert net.out.weight.grad is not None and net.out.weight.grad.abs().sum() == 0
    net.zero_grad()
    (net(x, label) - 1.0).square().sum().backward()
    assert net.out.weight.grad.abs().sum() > 0
    net.zero_grad()
    _randomize_output(net)
    (net(x, label) - 1.0).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = _randomize_output(FNO(channels=1, frames=2, width=8, modes=5, layers=2))
    torch.manual_seed(1)
    b = FNO(channels=1, frames=2, width=8, modes=5, layers=2)
    b.load_state_dict(a.state_dict())
    x, label = _inputs(batch=2, channels=1, frames=2, h=12, w=20)
    assert torch.equal(a(x, label), b(x, label))


@pytest.mark.parametrize("grid", [(32, 32), (27, 21)])
def test_translation_equivariance_under_periodic_shifts(grid):
    h, w = grid
    torch.manual_seed(0)
    net = _randomize_output(FNO(channels=2, frames=2, width=8, modes=6, layers=3))
    x, label = _inputs(batch=2, channels=2, frames=2, h=h, w=w)
    shift = (5, -3)
    y = net(x, label)
    y_shifted = net(torch.roll(x, shift, dims=(3, 4)), label)
    assert torch.allclose(y_shifted, torch.roll(y, shift, dims=(3, 4)), atol=1e-5)


def test_time_embedding_changes_the_output():
    torch.manual_seed(0)
    net = _randomize_output(FNO(channels=1, frames=2, width=8, modes=4, layers=2))
    x, _ = _inputs(batch=1, channels=1, frames=2, h=8, w=8)
    assert not torch.allclose(net(x, torch.tensor([-1.0])), net(x, torch.tensor([1.0])))


def test_as_denoiser_backbone_and_bad_inputs():
    net = FNO(channels=3, frames=4, width=8, modes=4, layers=1)
    den = Denoiser(net, VPSchedule())
    x_t = torch.randn(2, 3, 4, 10, 10)
    ctx = torch.rand(2, 4, 10, 10) < 0.5
    assert den(x_t, ctx, torch.tensor([0.1, 0.9])).shape == x_t.shape
    with pytest.raises(ValueError, match="x must be"):
        net(torch.randn(2, 6, 3, 10, 10), torch.zeros(2))
    with pytest.raises(ValueError, match="padding_mode"):
        FNO(channels=1, frames=1, padding_mode="reflect")
    assert isinstance(net, nn.Module)
