"""Imputation requests and answers on the wire: JSON or ``.npy``/``.npz`` in, checked arrays out.

A request is one sample ``(time, channel, y, x) = (T, C, H, W)`` in physical units, either as a
``field`` with NaN (JSON ``null``) at missing points or as ``values`` plus a bool ``mask``
``(T, H, W)`` shared by all channels. Binary bodies are read with ``allow_pickle=False``: nothing
from a request is ever unpickled. Every problem raises :class:`RequestError` with an HTTP status
and a message naming it; the server turns it into ``{"error": ...}``.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from incdyn.platform.suggest.options import SuggestOptions

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
ARRAY_NAMES = ("field", "values", "mask")
MAX_SEED = 2**63  # seeds are ints in [0, MAX_SEED)


class RequestError(ValueError):
    """A bad imputation request; ``status`` is the HTTP status it gets (400, 413 or 422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SampleShape:
    """What one request must look like.

    Attributes:
        frames: T.
        channels: channel names, in order (C = their number).
        grid: ``(H, W)``, or None when any grid is accepted.
    """

    frames: int
    channels: tuple[str, ...]
    grid: tuple[int, int] | None

    def describe(self) -> str:
        h, w = self.grid or ("H", "W")
        return f"(time, channel, y, x) = ({self.frames}, {len(self.channels)}, {h}, {w})"


@dataclass(frozen=True)
class Options:
    """Per-request options after validation."""

    k: int
    sampler: str
    seed: int | None
    level: float = 0.9  # central level of the interval bounds in the answer


# -- decoding ---------------------------------------------------------------------------------


def is_binary(body: bytes) -> bool:
    return body.startswith(NPY_MAGIC) or body.startswith(ZIP_MAGICS)


def decode_json(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON object → (arrays as nested lists, the remaining keys as options)."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RequestError(f"undecodable JSON body: {exc}", 400) from None
    if not isinstance(obj, dict):
        raise RequestError(
            f"JSON body must be an object with 'field' or 'values' and 'mask', got {type(obj).__name__}",
            400,
        )
    arrays = {name: obj.pop(name) for name in ARRAY_NAMES if name in obj}
    return arrays, obj


def decode_binary(body: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    """``.npy`` (the field) or ``.npz`` (``field``, or ``values`` and ``mask``) → arrays."""
    try:
        if body.startswith(NPY_MAGIC):
            return {"field": np.load(io.BytesIO(body), allow_pickle=False)}
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            names = list(npz.files)
            unknown = sorted(set(names) - set(ARRAY_NAMES))
            if unknown:
                raise RequestError(
                    f".npz holds unknown arrays {unknown}; expected 'field', or 'values' and 'mask'"
                )
            # a small compressed body must not inflate past the limit (zip bomb)
            inflated = sum(info.file_size for info in npz.zip.infolist())
            if inflated > max_bytes:
                raise RequestError(
                    f".npz inflates to {inflated} bytes, over the limit of {max_bytes}", 413
                )
            return {name: npz[name] for name in names}
    except RequestError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise RequestError(f"undecodable binary body (.npy/.npz): {exc}", 400) from None


def parse_options(
    raw: Mapping[str, Any], *, samplers: Sequence[str], default_k: int, max_k: int
) -> Options:
    """Validate ``k``, ``sampler`` and ``seed`` (JSON values or query-string text)."""
    unknown = sorted(set(raw) - {"k", "sampler", "seed", "level"})
    if unknown:
        raise RequestError(
            f"unknown request keys {unknown}; allowed: field, values, mask, k, sampler, seed, level"
        )
    k = _int_option(raw.get("k"), "k", default_k)
    if not 1 <= k <= max_k:
        raise RequestError(f"k={k} is out of range: the ensemble size must lie in [1, {max_k}]")
    sampler = raw.get("sampler") or "single"
    if sampler not in samplers:
        raise RequestError(f"unknown sampler {sampler!r}; allowed: {', '.join(samplers)}")
    seed = _int_option(raw.get("seed"), "seed", None)
    if seed is not None and not 0 <= seed < MAX_SEED:
        raise RequestError(f"seed={seed} must lie in [0, 2**63)")
    return Options(k=k, sampler=sampler, seed=seed, level=_level_option(raw.get("level")))


def parse_suggest(raw: Mapping[str, Any], max_k: int) -> SuggestOptions:
    """Validate the options of a ``/suggest`` request (the keys beside the field)."""
    try:
        opts = SuggestOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        allowed = ", ".join(SuggestOptions.model_fields)
        raise RequestError(
            f"{where}: {first['msg']} (keys: field or values and mask, {allowed})"
        ) from None
    if opts.k is not None and opts.k > max_k:
        raise RequestError(
            f"k={opts.k} is out of range: the ensemble size must lie in [2, {max_k}]"
        )
    return opts


def _level_option(value: Any) -> float:
    """The interval level: a number in [0.01, 0.99] (default 0.9)."""
    if value is None or value == "":
        return 0.9
    try:
        level = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        level = math.nan
    if not 0.01 <= level <= 0.99:  # NaN fails too
        raise RequestError(f"level must be a number in [0.01, 0.99], got {value!r}")
    return level


def _int_option(value: Any, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise RequestError(f"{name} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be an integer, got {value!r}") from None


# -- validation -------------------------------------------------------------------------------


def _as_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value, dtype=np.float64 if name != "mask" else None)
        except (TypeError, ValueError) as exc:
            raise RequestError(
                f"{name} is not a rectangular array of numbers: {exc}", 400
            ) from None
    if arr.dtype.kind not in "biuf":
        raise RequestError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _first(where: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(where)[0])


def _check_shape(arr: np.ndarray, shape: SampleShape, name: str) -> None:
    want = shape.describe()
    if arr.ndim != 4:
        hint = " (one sample per request, no batch axis)" if arr.ndim == 5 else ""
        raise RequestError(f"{name} must have 4 dims {want}, got shape {arr.shape}{hint}")
    t, c, h, w = arr.shape
    if c != len(shape.channels):
        raise RequestError(
            f"{name} has {c} channels, the model has {len(shape.channels)} "
            f"({', '.join(shape.channels)}); expected {want}, got shape {arr.shape}"
        )
    if t != shape.frames or (shape.grid and (h, w) != shape.grid) or min(h, w) < 1:
        raise RequestError(f"{name} must have shape {want}, got {arr.shape}")


def to_sample(arrays: Mapping[str, Any], shape: SampleShape) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of a request → ``values`` ``(T, C, H, W)`` (as sent) and ``mask`` bool ``(T, H, W)``."""
    names = set(arrays)
    if names == {"field"}:
        field = _as_array(arrays["field"], "field")
        _check_shape(field, shape, "field")
        missing = np.isnan(field) if field.dtype.kind == "f" else np.zeros(field.shape, bool)
        partial = missing.any(axis=1) & ~missing.all(axis=1)
        if partial.any():
            raise RequestError(
                f"field is NaN in some channels but not others at {int(partial.sum())} points "
                f"(first at (t, y, x) = {_first(partial)}); the mask is shared by all channels: "
                "send 'values' and 'mask' instead"
            )
        mask = ~missing.all(axis=1)
        values = field
    elif names == {"values", "mask"}:
        values = _as_array(arrays["values"], "values")
        _check_shape(values, shape, "values")
        raw = _as_array(arrays["mask"], "mask")
        t, _, h, w = values.shape
        if raw.shape != (t, h, w):
            raise RequestError(
                f"mask must have shape (time, y, x) = {(t, h, w)} (shared by all channels), "
                f"got {raw.shape}"
            )
        if raw.dtype != bool and not np.isin(raw, (0, 1)).all():
            raise RequestError("mask must be bool or 0/1")
        mask = raw.astype(bool)
    else:
        raise RequestError(
            f"a request needs 'field', or 'values' and 'mask'; got {sorted(names) or 'neither'}"
        )
    if not mask.any():
        raise RequestError("mask is empty: the request has no observed point")
    bad = mask[:, None] & ~np.isfinite(values)
    if bad.any():
        raise RequestError(
            f"values are NaN or infinite at {int(bad.sum())} observed points "
            f"(first at (t, c, y, x) = {_first(bad)})"
        )
    return values, mask


# -- encoding ---------------------------------------------------------------------------------


def encode_json(result: Mapping[str, Any]) -> bytes:
    """Arrays become nested lists; scalars stay as they are."""
    out = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in result.items()}
    return json.dumps(out).encode()


def encode_npz(result: Mapping[str, Any]) -> bytes:
    """Every entry as an array of an ``.npz`` (strings as unicode arrays, never objects)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in result.items()})
    return buf.getvalue()
