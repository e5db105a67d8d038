"""Data-matching objective (Eq. 1) and Theorem 1: only query entries are trained."""

from __future__ import annotations

import torch
from conftest import free_field

from incdyn.datasets.masks import MaskFamily, sample_masks
from incdyn.models.denoiser import Denoiser
from incdyn.models.objective import data_matching_loss
from incdyn.models.partition import Partition
from incdyn.models.schedule import VPSchedule


def test_network_input_is_context_times_xt_and_context():
    net = free_field((1, 2, 8, 8))
    den = Denoiser(net, VPSchedule())
    m = sample_masks(MaskFamily(p=0.5), 3, 2, 8, 8, torch.Generator().manual_seed(0))
    x = torch.randn(3, 1, 2, 8, 8)
    data_matching_loss(den, x * m[:, None], m, Partition(), torch.Generator().manual_seed(1))
    values, ctx = net.seen_input[:, :1], net.seen_input[:, 1:]
    assert ((ctx == 0) | (ctx == 1)).all()
    assert (values[ctx == 0] == 0).all()  # nothing outside the context reaches the network
    assert not (ctx.bool().squeeze(1) & ~m).any()  # context ⊆ M


def test_loss_gradient_only_on_query_entries():
    torch.manual_seed(0)
    net = free_field((1, 2, 8, 8))
    den = Denoiser(net, VPSchedule())
    m = sample_masks(MaskFamily(p=0.5), 1, 2, 8, 8, torch.Generator().manual_seed(0))
    x = torch.randn(1, 1, 2, 8, 8) * m[:, None]
    part = Partition(context_ratio=0.5, query_ratio=0.5)
    g = torch.Generator().manual_seed(3)
    loss = data_matching_loss(den, x, m, part, g)
    loss.backward()
    _, qry = part.split(m, torch.Generator().manual_seed(3))
    grad = net.theta.grad[0]
    assert (grad[~qry[0]] == 0).all()
    assert (grad[qry[0]] != 0).any()


def test_zero_exposure_dimensions_stay_untrained():
    """Theorem 1 (iii): where P(i ∈ qry | ctx) = 0 the output never gets a gradient."""
    truth = torch.linspace(-1, 1, 2 * 8 * 8).view(1, 1, 2, 8, 8)
    net = free_field((1, 2, 8, 8))
    den = Denoiser(net, VPSchedule())
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    never = torch.zeros(8, 8, dtype=torch.bool)
    never[:, :3] = True  # columns that no sample ever observes
    for _ in range(300):
        m = sample_masks(MaskFamily(p=0.6), 8, 2, 8, 8, g) & ~never
        loss = data_matching_loss(den, truth * m[:, None], m, Partition(), g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    theta = net.theta.detach()[0]
    assert (theta[:, :, :3] == 0).all()  # untouched: exactly the initial value
    # exposed dimensions converge to E[x_i | ctx] = x_i
    assert torch.allclose(theta[:, :, 3:], truth[0, 0][:, :, 3:], atol=0.05)
