"""The general gridded source's config: which file, which variables, which roles its dimensions
play, how time is cut into windows and splits, and what lies outside the domain.

Spec forms are normalised to hashable tuples here (the config is a cache key and is stored as
JSON): ``dims`` as ``[time, y, x]`` or ``{time: .., y: .., x: ..}``; ``split`` as three
fractions, ``{train: [START, END], val: [..], test: [..]}`` time ranges, or ``ordered``;
``domain`` as ``missing``, ``all`` or ``{variable: NAME, url: FILE, inside: nonzero|zero}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from incdyn.datasets.store import StoreError

ROLES = ("time", "y", "x")
SPLIT_NAMES = ("train", "val", "test")
DOMAIN_KEYS = ("variable", "url", "inside")


class XarraySourceError(StoreError):
    """The data set does not fit the spec: the message names the ``data.params`` field."""


def _bad(name: str, fix: str) -> XarraySourceError:
    return XarraySourceError(f"data.params.{name}: {fix}")


def parse_variable(variable: str) -> tuple[str, int | float | None]:
    """``"name@level"`` → ``(name, level)`` (the level's value on the level dimension);
    ``"name"`` → ``(name, None)``."""
    name, _, level = variable.partition("@")
    if not name or (variable.endswith("@")):
        raise _bad("variables", f"{variable!r} must be 'name' or 'name@level'")
    if not level:
        return name, None
    try:
        return name, int(level)
    except ValueError:
        try:
            return name, float(level)
        except ValueError:
            raise _bad("variables", f"{variable!r}: the level {level!r} is not a number") from None


def channel_name(variable: str) -> str:
    """``"geopotential@500"`` → ``"geopotential_500"``; a single-level name is kept."""
    name, level = parse_variable(variable)
    return name if level is None else f"{name}_{level:g}"


def _dims(value: Any) -> tuple[str, str, str]:
    if isinstance(value, dict):
        if set(value) != set(ROLES):
            raise _bad(
                "dims", f"a mapping needs exactly the roles {list(ROLES)}, got {list(value)}"
            )
        value = [value[r] for r in ROLES]
    names = tuple(str(v) for v in value)
    if len(names) != 3 or len(set(names)) != 3:
        raise _bad("dims", "give three distinct names: [time, y, x] or {time: .., y: .., x: ..}")
    return names  # type: ignore[return-value]


def _label(value: Any) -> str:
    """A time as text: ``1992`` (or ``1992.0``, YAML's number) → ``"1992"``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _split(value: Any) -> str | tuple:
    if value == "ordered":
        return value
    if isinstance(value, dict):
        if set(value) != set(SPLIT_NAMES):
            raise _bad("split", f"time ranges need exactly {list(SPLIT_NAMES)}, got {list(value)}")
        value = [value[s] for s in SPLIT_NAMES]
    value = tuple(value)
    if len(value) == 3 and all(isinstance(v, (list, tuple)) for v in value):
        if any(len(v) != 2 for v in value):
            raise _bad("split", "each time range is [START, END]")
        return tuple((_label(a), _label(b)) for a, b in value)
    numbers = len(value) == 3 and all(isinstance(v, (int, float)) for v in value)
    if numbers and all(v >= 0 for v in value) and abs(sum(value) - 1) < 1e-9:
        return tuple(float(v) for v in value)
    raise _bad(
        "split",
        "three fractions summing to 1 ([0.7, 0.15, 0.15]) or time ranges "
        "({train: [START, END], val: [START, END], test: [START, END]})",
    )


def _domain(value: Any) -> str | tuple:
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
        or inside
        not in (
            "nonzero",
            "zero",
        )
    ):
        raise _bad(
            "domain",
            "'missing' (points missing at every time), 'all', or {variable: NAME} with optional "
            "url: FILE (another file) and inside: nonzero|zero",
        )
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class XarrayConfig:
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
    window: int = 4
    stride: int = 1
    split: Any = (0.7, 0.15, 0.15)
    gaps: str = "benchmark"
    engine: str = ""
    patch: int = 0
    domain: Any = "missing"
    period: tuple[str, ...] = ()
    frame_step: int = 1
    coarsen: int = 1
    level_dim: str = "level"
    ascending: bool = False
    timeout_s: float = 10.0
    storage_options: Any = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the spec's forms once
        set_(self, "variables", tuple(self.variables))
        set_(self, "dims", _dims(self.dims))
        set_(self, "split", _split(self.split))
        set_(self, "domain", _domain(self.domain))
        set_(self, "period", tuple(_label(p) for p in self.period))
        options = self.storage_options
        options = options.items() if isinstance(options, dict) else options
        set_(self, "storage_options", tuple(sorted((str(k), v) for k, v in options)))
        channels = [channel_name(v) for v in self.variables]
        checks = [
            (len(set(channels)) == len(channels), "variables", "a channel is repeated"),
            (self.window >= 1 and self.stride >= 1, "window", "window and stride must be >= 1"),
            (self.frame_step >= 1 and self.coarsen >= 1, "frame_step", "frame_step, coarsen >= 1"),
            (self.patch >= 0, "patch", "0 (the whole grid) or a tile side >= 1"),
            (self.gaps in ("benchmark", "real"), "gaps", "one of 'benchmark', 'real'"),
            (len(self.period) in (0, 2), "period", "[START, END] or nothing"),
            (self.timeout_s > 0, "timeout_s", "seconds > 0"),
            (
                self.split != "ordered" or self.stride >= self.window,
                "stride",
                f"stride={self.stride} must be >= window={self.window} with split: ordered: "
                "windows that share frames would let the train/val/test splits overlap",
            ),
        ]
        for ok, name, fix in checks:
            if not ok:
                raise _bad(name, fix)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(channel_name(v) for v in self.variables)
