"""Registry of data generators: name → config class, presets and ``generate`` function.

PDE generators draw samples from a seed; ``era5`` reads real windows in time order (``ordered``).

A spec names a generator, a preset and field overrides: the preset's values with the overrides
on top (:meth:`Generator.values`) validate into the generator's frozen pydantic config
(:func:`make_config`; unknown fields are errors that list the allowed ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from incdyn.datasets.errors import UserError
from incdyn.datasets.pde import advection, navier_stokes, shallow_water
from incdyn.datasets.simulation import Simulation
from incdyn.datasets.source_config import SourceConfig
from incdyn.datasets.sources import era5, navier_stokes_public, xarray_source


@dataclass(frozen=True)
class Generator:
    """One data set: its config model, named presets and generation function.

    ``ordered`` sources take ``generate(cfg, n, generator, offset=i)`` and return items
    ``i : i + n`` of a fixed sequence (``build`` gives each split its own range); the others draw
    ``n`` samples from ``generator``. ``by_split`` sources take ``split=`` and ``start=``
    instead: each split is its own sequence (the windows of its own time period).
    """

    config_cls: type[SourceConfig]
    presets: Mapping[str, SourceConfig]
    generate: Callable[..., Simulation]
    channels: tuple[str, ...]  # default channels (ERA5's follow its config's variables)
    ordered: bool = False
    by_split: bool = False

    def values(self, preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The input of the config: ``preset``'s values, ``overrides`` in their place."""
        return {**self.presets[preset].model_dump(), **overrides}


GENERATORS: dict[str, Generator] = {
    "navier_stokes": Generator(
        navier_stokes.NavierStokesConfig,
        navier_stokes.PRESETS,
        navier_stokes.generate,
        navier_stokes.CHANNELS,
    ),
    "shallow_water": Generator(
        shallow_water.ShallowWaterConfig,
        shallow_water.PRESETS,
        shallow_water.generate,
        shallow_water.CHANNELS,
    ),
    "advection": Generator(
        advection.AdvectionConfig,
        advection.PRESETS,
        advection.generate,
        advection.CHANNELS,
    ),
    "era5": Generator(era5.ERA5Config, era5.PRESETS, era5.generate, era5.CHANNELS, ordered=True),
    "navier_stokes_public": Generator(
        navier_stokes_public.PublicNavierStokesConfig,
        navier_stokes_public.PRESETS,
        navier_stokes_public.generate,
        navier_stokes_public.CHANNELS,
        ordered=True,
    ),
    "xarray": Generator(
        xarray_source.XarrayConfig,
        xarray_source.PRESETS,
        xarray_source.generate,
        xarray_source.CHANNELS,
        by_split=True,
    ),
}


def make_config(source: str, preset: str, overrides: Mapping[str, Any]) -> SourceConfig:
    """The generator config of ``preset`` with ``overrides`` applied and validated; an invalid
    one is a :class:`UserError` with a ``data.params.FIELD: problem`` line per problem."""
    if source not in GENERATORS:
        raise UserError("data.source", f"{source!r} is not one of {sorted(GENERATORS)}")
    gen = GENERATORS[source]
    if preset not in gen.presets:
        raise UserError(
            "data.preset", f"{preset!r} is not a {source} preset; presets: {sorted(gen.presets)}"
        )
    try:
        return gen.config_cls.model_validate(gen.values(preset, overrides))
    except ValidationError as exc:
        raise UserError("\n".join(_problem(gen, err) for err in exc.errors())) from None


def _problem(gen: Generator, err: Any) -> str:
    """One line of an invalid config: ``data.params.FIELD: what is wrong``."""
    path = ".".join(["data.params", *map(str, err["loc"])])
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key; allowed keys here: {', '.join(gen.config_cls.model_fields)}"
    return f"{path}: {err['msg']}"
