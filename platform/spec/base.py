"""The spec's shared pieces: its error type and the strict, frozen base of every section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from incdyn.datasets.errors import UserError


class SpecError(UserError):
    """An invalid experiment spec; the message lists every problem with its field path."""


class Strict(BaseModel):
    """A spec section: unknown keys are errors, and a parsed section never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
