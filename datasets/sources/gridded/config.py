"""The general gridded source's config: which file, which variables, which roles its dimensions
play, how time is cut into windows and splits, and what lies outside the domain.

Spec forms are normalised to hashable tuples here (the config is a cache key and is stored as
JSON): ``dims`` as ``[time, y, x]`` or ``{time: .., y: .., x: ..}``; ``split`` as three
fractions, ``{train: [START, END], val: [..], test: [..]}`` time ranges, or ``ordered``;
``domain`` as ``missing``, ``all`` or ``{variable: NAME, url: FILE, inside: nonzero|zero}``.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from incdyn.datasets.source_config import Int, Number, SourceConfig
from incdyn.datasets.store import StoreError

ROLES = ("time", "y", "x")
SPLIT_NAMES = ("train", "val", "test")
DOMAIN_KEYS = ("variable", "url", "inside")


class XarraySourceError(StoreError):
    """The data set does not fit the spec: the message names the ``data.params`` field."""


def parse_variable(variable: str) -> tuple[str, int | float | None]:
    """``"name@level"`` → ``(name, level)`` (the level's value on the level dimension);
    ``"name"`` → ``(name, None)``."""
    name, _, level = variable.partition("@")
    if not name or (variable.endswith("@")):
        raise ValueError(f"{variable!r} must be 'name' or 'name@level'")
    if not level:
        return name, None
    try:
        return name, int(level)
    except ValueError:
        try:
            return name, float(level)
        except ValueError:
            raise ValueError(f"{variable!r}: the level {level!r} is not a number") from None


def channel_name(variable: str) -> str:
    """``"geopotential@500"`` → ``"geopotential_500"``; a single-level name is kept."""
    name, level = parse_variable(variable)
    return name if level is None else f"{name}_{level:g}"


def distinct_channels(variables: tuple[str, ...]) -> tuple[str, ...]:
    """``variables`` when each is ``name`` or ``name@level`` and no two give the same channel."""
    channels = [channel_name(v) for v in variables]
    if len(set(channels)) != len(channels):
        raise ValueError("a channel is repeated")
    return variables


def _dims(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != set(ROLES):
            raise ValueError(f"a mapping needs exactly the roles {list(ROLES)}, got {list(value)}")
        value = [value[r] for r in ROLES]
    names = tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()
    if len(names) != 3 or len(set(names)) != 3:
        raise ValueError("give three distinct names: [time, y, x] or {time: .., y: .., x: ..}")
    return names


def _label(value: Any) -> str:
    """A time as text: ``1992`` (or ``1992.0``, YAML's number) → ``"1992"``; a YAML date
    (unquoted ``2002-01-01``) → its ISO text."""
    if isinstance(value, datetime.date):  # a datetime is one too
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _split(value: Any) -> Any:
    if value == "ordered":
        return value
    if isinstance(value, dict):
        if set(value) != set(SPLIT_NAMES):
            raise ValueError(f"time ranges need exactly {list(SPLIT_NAMES)}, got {list(value)}")
        value = [value[s] for s in SPLIT_NAMES]
    value = tuple(value) if isinstance(value, list | tuple) else ()
    if len(value) == 3 and all(isinstance(v, list | tuple) for v in value):
        if any(len(v) != 2 for v in value):
            raise ValueError("each time range is [START, END]")
        return tuple((_label(a), _label(b)) for a, b in value)
    numbers = len(value) == 3 and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )
    if numbers and all(v >= 0 for v in value) and abs(sum(value) - 1) < 1e-9:
        return tuple(float(v) for v in value)
    raise ValueError(
        "three fractions summing to 1 ([0.7, 0.15, 0.15]) or time ranges "
        "({train: [START, END], val: [START, END], test: [START, END]})"
    )


def _domain(value: Any) -> Any:
    if value in ("missing", "all"):
        return value
    if isinstance(value, dict):
        value = sorted(value.items())
    try:
        pairs = tuple((str(k), str(v)) for k, v in value)
    except (TypeError, ValueError):
        pairs = ()
    keys = [k for k, _ in pairs]
    inside = dict(pairs).get("inside", "nonzero")
    if (
        not pairs
        or "variable" not in keys
        or set(keys) - set(DOMAIN_KEYS)
        or inside not in ("nonzero", "zero")
    ):
        raise ValueError(
            "'missing' (points missing at every time), 'all', or {variable: NAME} with optional "
            "url: FILE (another file) and inside: nonzero|zero"
        )
    return tuple(sorted(pairs))


Fractions = tuple[float, float, float]  # of the time axis: train, val, test
TimeRange = tuple[str, str]  # [START, END], partial dates cover their whole year, month, ...
Split = Literal["ordered"] | Fractions | tuple[TimeRange, TimeRange, TimeRange]
Domain = Literal["missing", "all"] | tuple[tuple[str, str], ...]  # or sorted (key, value) pairs


class XarrayConfig(SourceConfig):
    """Attributes:
    url: zarr store or netCDF file (path, ``memory://``, ``gs://``, or ``package://PKG/PATH``
        for a file shipped inside an installed package).
    variables: the channels, in order: ``name``, or ``name@LEVEL`` (one value of ``level_dim``).
    dims: the file's dimension names for the roles time, y, x (list or mapping).
    window: frames per sample; stride: frames between window starts.
    split: fractions of the time axis, time ranges per split, or ``ordered`` (windows in time
        order, each split taking the next ones: read by offset, as ERA5 is).
    gaps: ``benchmark`` (complete inside the domain; masks drawn on top) or ``real``.
    engine: xarray engine (empty: ``zarr`` for ``.zarr``/``memory://``/``gs://``, else netCDF).
    patch: cut the grid into ``patch`` × ``patch`` tiles, each a sample (0: the whole grid).
    tiles: which tiles are samples: ``inside`` (only tiles wholly inside the domain) or
        ``coastal`` (also tiles partly outside it, land under a sea field: each sample then has
        its own domain).
    min_inside: the share of a ``coastal`` tile's points that must lie inside the domain for
        the tile to be kept (a tile without a domain point is never kept).
    domain: ``missing``, ``all``, or a variable (of this file or ``url``) marking the domain.
    period: ``[START, END]``: only these times are used (empty: all).
    frame_step: keep every ``frame_step``-th frame; coarsen: average ``coarsen`` × ``coarsen``
        cells (rows/columns that do not fill a block are dropped).
    level_dim: the dimension ``name@LEVEL`` selects on.
    ascending: sort y and x ascending (latitude stored north to south is flipped).
    timeout_s: seconds to wait for a remote store's first answer.
    storage_options: fsspec options (empty: anonymous access for ``gs://``).
    """

    url: str = ""
    variables: tuple[str, ...] = ()
    dims: tuple[str, str, str] = ("time", "y", "x")
    window: Int = Field(4, ge=1)
    stride: Int = Field(1, ge=1)
    split: Split = (0.7, 0.15, 0.15)
    gaps: Literal["benchmark", "real"] = "benchmark"
    engine: str = ""
    patch: Int = Field(0, ge=0)  # 0: the whole grid
    tiles: Literal["inside", "coastal"] = "inside"
    min_inside: Number = Field(0.5, gt=0.0, le=1.0)
    domain: Domain = "missing"
    period: tuple[str, ...] = ()
    frame_step: Int = Field(1, ge=1)
    coarsen: Int = Field(1, ge=1)
    level_dim: str = "level"
    ascending: bool = False
    timeout_s: Number = Field(10.0, gt=0.0)
    storage_options: tuple[tuple[str, Any], ...] = ()  # sorted (key, value) pairs

    # the spec's forms, normalised once to hashable tuples
    _variables = field_validator("variables")(distinct_channels)
    _dims = field_validator("dims", mode="before")(_dims)
    _split = field_validator("split", mode="before")(_split)
    _domain = field_validator("domain", mode="before")(_domain)

    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        labels = tuple(_label(p) for p in value) if isinstance(value, list | tuple) else None
        if labels is None or len(labels) not in (0, 2):
            raise ValueError("[START, END] or nothing")
        return labels

    @field_validator("storage_options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        pairs = value.items() if isinstance(value, dict) else value
        try:
            return tuple(sorted((str(k), v) for k, v in pairs))
        except (TypeError, ValueError):
            raise ValueError("a mapping of fsspec options") from None

    @model_validator(mode="after")
    def _disjoint_ordered_splits(self) -> XarrayConfig:
        if self.split == "ordered" and self.stride < self.window:
            raise ValueError(
                f"stride={self.stride} must be >= window={self.window} with split: ordered: "
                "windows that share frames would let the train/val/test splits overlap"
            )
        return self

    LATER = ("tiles", "min_inside")  # added later: out of a store's identity at their default

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(channel_name(v) for v in self.variables)
