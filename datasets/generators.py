"""Registry of data generators: name → config class, presets and ``generate`` function.

PDE generators draw samples from a seed; ``era5`` reads real windows in time order (``ordered``).

A spec names a generator, a preset and field overrides; :func:`make_config` resolves them into
the generator's validated, frozen config (unknown fields are errors that list the allowed ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from incdyn.datasets.errors import UserError
from incdyn.datasets.pde import advection, navier_stokes, shallow_water
from incdyn.datasets.simulation import Simulation
from incdyn.datasets.sources import era5, navier_stokes_public, xarray_source


@dataclass(frozen=True)
class Generator:
    """One data set: its config dataclass, named presets and generation function.

    ``ordered`` sources take ``generate(cfg, n, generator, offset=i)`` and return items
    ``i : i + n`` of a fixed sequence (``build`` gives each split its own range); the others draw
    ``n`` samples from ``generator``. ``by_split`` sources take ``split=`` and ``start=``
    instead: each split is its own sequence (the windows of its own time period).
    """

    config_cls: type
    presets: dict[str, Any]
    generate: Callable[..., Simulation]
    channels: tuple[str, ...]  # default channels (ERA5's follow its config's variables)
    ordered: bool = False
    by_split: bool = False


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


def make_config(source: str, preset: str, overrides: dict[str, Any]) -> Any:
    """The generator config of ``preset`` with ``overrides`` applied and validated."""
    if source not in GENERATORS:
        raise UserError("data.source", f"{source!r} is not one of {sorted(GENERATORS)}")
    gen = GENERATORS[source]
    if preset not in gen.presets:
        raise UserError(
            "data.preset", f"{preset!r} is not a {source} preset; presets: {sorted(gen.presets)}"
        )
    fields = {f.name for f in dataclasses.fields(gen.config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(
            "data.params", f"{unknown} are not {source} settings; allowed: {sorted(fields)}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    try:
        return dataclasses.replace(gen.presets[preset], **values)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:  # the config's own checks of the values
        raise UserError("data.params", str(exc)) from exc
