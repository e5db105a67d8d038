"""The options of a suggestion, as ``incdyn suggest`` and ``POST /suggest`` take them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from incdyn.platform.suggest.window import UnitRequest


class SuggestOptions(BaseModel):
    """Where and how to choose units (keys of a ``/suggest`` request beside the field).

    Attributes:
        budget: units to choose (>= 1, at most the candidates).
        frame: the window's frame of the new observations (default: the last).
        unit: ``point``, ``station`` or ``tile``.
        rule: ``variance`` (greedy by expected variance reduction), ``spread``, ``random``.
        noise: an observation's noise standard deviation in training-std units.
        tile: side of a tile in grid points.
        sites: candidate station positions ``[[y, x], ...]``.
        radius: a station's disk radius in grid points.
        k: ensemble members (>= 2).
        seed: seed of the members' and the random rule's draws.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: int = Field(ge=1)  # units to choose
    frame: int | None = None  # the window's frame (default: the last)
    unit: Literal["point", "station", "tile"] = "point"  # what one observation reveals
    rule: Literal["variance", "spread", "random"] = "variance"  # how units are ranked
    noise: float = Field(0.1, gt=0.0)  # observation noise std, training-std units
    tile: int = Field(4, ge=1)  # tile side in grid points
    sites: list[tuple[int, int]] = []  # station candidates (y, x)
    radius: float = Field(1.0, ge=0.0)  # station disk radius in grid points
    k: int | None = Field(None, ge=2)  # ensemble members (default: the model's K)
    seed: int = Field(0, ge=0, lt=2**63)  # seed of every draw

    def request(self, frames: int) -> UnitRequest:
        frame = frames - 1 if self.frame is None else self.frame
        if not 0 <= frame < frames:
            raise ValueError(f"frame: {frame} lies outside the window's {frames} frames")
        return UnitRequest(
            frame=frame,
            budget=self.budget,
            unit=self.unit,
            rule=self.rule,
            noise=self.noise,
            tile=self.tile,
            sites=list(self.sites),
            radius=self.radius,
        )
