"""Explicit registry of backbones, and the denoiser built from a resolved spec."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from incdyn.models.backbones.fno import FNO
from incdyn.models.backbones.unet import UNet
from incdyn.models.denoiser import Denoiser
from incdyn.models.schedule import VPSchedule

BACKBONES: dict[str, type[nn.Module]] = {"unet": UNet, "fno": FNO}


def build_backbone(backbone: dict[str, Any], *, channels: int, frames: int) -> nn.Module:
    """Instantiate ``backbone["name"]`` with the fields of the spec that its class accepts."""
    options = dict(backbone)
    name = options.pop("name")
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not one of {sorted(BACKBONES)}")
    cls = BACKBONES[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "channels", "frames"}
    kwargs = {
        k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in accepted
    }
    return cls(channels=channels, frames=frames, **kwargs)


def build_denoiser(
    backbone: dict[str, Any],
    schedule: dict[str, Any],
    *,
    channels: int,
    frames: int,
    seed: int | None = None,
) -> Denoiser:
    """``D_θ`` for fields with ``channels`` channels and ``frames`` frames.

    With ``seed``, the initial weights are a function of the seed alone: they are drawn from
    the CPU generator reseeded inside ``torch.random.fork_rng``, so the caller's global RNG
    state is left as it was. Without it they come from the global RNG (e.g. before a
    ``load_state_dict`` that overwrites them anyway).
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        net = build_backbone(backbone, channels=channels, frames=frames)
    return Denoiser(net, VPSchedule(**schedule))
