"""Explicit registry of backbones, and the denoiser built from a resolved spec."""

from __future__ import annotations

from typing import Any

from torch import nn

from incdyn.models.denoiser import Denoiser
from incdyn.models.schedule import VPSchedule
from incdyn.models.unet import UNet

BACKBONES: dict[str, type[nn.Module]] = {"unet": UNet}


def build_backbone(backbone: dict[str, Any], *, channels: int, frames: int) -> nn.Module:
    """Instantiate the backbone named in ``backbone["name"]`` with the remaining fields."""
    options = dict(backbone)
    name = options.pop("name")
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not one of {sorted(BACKBONES)}")
    if "mults" in options:
        options["mults"] = tuple(options["mults"])
    return BACKBONES[name](channels=channels, frames=frames, **options)


def build_denoiser(
    backbone: dict[str, Any], schedule: dict[str, Any], *, channels: int, frames: int
) -> Denoiser:
    """``D_θ`` for fields with ``channels`` channels and ``frames`` frames."""
    return Denoiser(
        build_backbone(backbone, channels=channels, frames=frames), VPSchedule(**schedule)
    )
