"""The backbone registry: the seed alone fixes a denoiser's initial weights."""

from __future__ import annotations

import pytest
import torch

from incdyn.models.backbones.registry import build_denoiser

SCHEDULE = {"beta_min": 0.1, "beta_max": 20.0}
BACKBONES = [
    {"name": "unet", "width": 8, "mults": [1, 2], "blocks_per_level": 1},
    {"name": "fno", "width": 8, "modes": 4, "layers": 2},
]


def _weights(backbone: dict, seed: int | None) -> dict[str, torch.Tensor]:
    model = build_denoiser(backbone, SCHEDULE, channels=2, frames=3, seed=seed)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("backbone", BACKBONES, ids=lambda b: b["name"])
def test_same_seed_same_initial_weights_whatever_the_global_rng(backbone):
    torch.manual_seed(123)
    a = _weights(backbone, seed=4)
    torch.manual_seed(456)  # another global state: must not matter
    b = _weights(backbone, seed=4)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("backbone", BACKBONES, ids=lambda b: b["name"])
def test_other_seed_other_weights(backbone):
    a, b = _weights(backbone, seed=0), _weights(backbone, seed=1)
    learnable = [k for k, v in a.items() if v.is_floating_point() and v.numel() > 1]
    assert learnable
    assert any(not torch.equal(a[k], b[k]) for k in learnable)


def test_seeded_build_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(5)
    torch.manual_seed(7)
    _weights(BACKBONES[0], seed=3)
    assert torch.equal(torch.rand(5), expected)


def test_unseeded_build_draws_from_the_global_rng():
    torch.manual_seed(9)
    a = _weights(BACKBONES[0], seed=None)
    torch.manual_seed(10)
    b = _weights(BACKBONES[0], seed=None)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
