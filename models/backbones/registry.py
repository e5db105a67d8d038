"""Explicit registry of backbones, and the denoiser built from their typed options."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import TypeAdapter
from torch import nn

from incdyn.models.backbones.fno import FNO
from incdyn.models.backbones.options import BackboneSpec, FNOSpec, UNetSpec
from incdyn.models.backbones.unet import UNet
from incdyn.models.denoiser import Denoiser
from incdyn.models.schedule import VPSchedule

BACKBONES: dict[str, tuple[type[nn.Module], type[UNetSpec | FNOSpec]]] = {
    "unet": (UNet, UNetSpec),
    "fno": (FNO, FNOSpec),
}
_BACKBONE = TypeAdapter(BackboneSpec)


def backbone_spec(backbone: UNetSpec | FNOSpec | dict[str, Any]) -> UNetSpec | FNOSpec:
    """Typed backbone options; a mapping is validated (unknown fields are errors)."""
    return _BACKBONE.validate_python(backbone)


def switch_backbone(options: dict[str, Any], name: str) -> dict[str, Any]:
    """Options for backbone ``name``: those of ``options`` that it takes, the rest its defaults."""
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not one of {sorted(BACKBONES)}")
    fields = BACKBONES[name][1].model_fields
    return {**{k: v for k, v in options.items() if k in fields}, "name": name}


def build_backbone(
    backbone: UNetSpec | FNOSpec | dict[str, Any], *, channels: int, frames: int
) -> nn.Module:
    """Instantiate the backbone that ``backbone.name`` names with every one of its options."""
    spec = backbone_spec(backbone)
    cls, _ = BACKBONES[spec.name]
    return cls(channels=channels, frames=frames, **spec.model_dump(exclude={"name"}))


def build_denoiser(
    backbone: UNetSpec | FNOSpec | dict[str, Any],
    schedule: VPSchedule | dict[str, Any],
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
    return Denoiser(net, VPSchedule.model_validate(schedule))
