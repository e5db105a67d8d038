"""The base of every data source's config: a frozen pydantic model whose unknown keys are errors,
and the number types the configs share (a bool is not a number; NaN and infinity are refused)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AllowInfNan, BaseModel, ConfigDict, Strict

Int = Annotated[int, Strict()]  # an integer: 3.0, "3" and True are refused
Number = Annotated[float, Strict(), AllowInfNan(False)]  # a finite real (an int is one)


class SourceConfig(BaseModel):
    """A data source's settings (``data.params`` of a spec, over the source's preset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # fields added after stores were built from this source: left out of the identity while at
    # their default, so that a spec that does not set them finds its existing store
    LATER: ClassVar[tuple[str, ...]] = ()

    def identity(self) -> dict[str, Any]:
        """The settings as a store's identity: every field, less the :attr:`LATER` ones at their
        default."""
        out = self.model_dump()
        for name in self.LATER:
            if out[name] == type(self).model_fields[name].default:
                out.pop(name)
        return out
