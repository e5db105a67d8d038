"""The options each backbone takes, as an experiment spec's ``backbone`` section names them.

One model per backbone, told apart by ``name``: a field that the chosen backbone does not take
is an error (``mults`` on the FNO, ``modes`` on the UNet), never silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

PaddingMode = Literal["zeros", "circular"]


class UNetSpec(BaseModel):
    """EDM2-style UNet with the frames folded into channels (:class:`~.unet.UNet`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["unet"] = "unet"
    width: int = Field(32, ge=4)  # channels at the finest level
    mults: tuple[int, ...] = (1, 2, 2)  # channel multiplier per level
    blocks_per_level: int = Field(2, ge=1)  # residual blocks per level
    attention_levels: tuple[int, ...] = ()  # levels with self-attention
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    padding_mode: PaddingMode = "circular"  # circular for periodic domains
    channels_last: bool = True  # convolutions in channels-last layout (GPU, oneDNN)


class FNOSpec(BaseModel):
    """Fourier neural operator (:class:`~.fno.FNO`, Table 5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["fno"] = "fno"
    width: int = Field(32, ge=4)  # lifted channels
    modes: int = Field(12, ge=1)  # Fourier modes kept per direction
    layers: int = Field(4, ge=1)  # spectral layers
    padding_mode: PaddingMode = "circular"


def _backbone_name(value: Any) -> str | None:
    """The tag of a backbone section: its ``name``, ``unet`` when left out."""
    if isinstance(value, dict):
        return value.get("name", "unet")
    return getattr(value, "name", None)


BackboneSpec = Annotated[
    Annotated[UNetSpec, Tag("unet")] | Annotated[FNOSpec, Tag("fno")],
    Discriminator(
        _backbone_name,
        custom_error_type="backbone_name",
        custom_error_message="name must be one of 'unet', 'fno'",
    ),
]
