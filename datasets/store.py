"""The zarr store of a data set, read and written with xarray.

One store, three groups ``train``, ``val``, ``test``. In each group:

- ``field``  float32 ``(sample, time, channel, y, x)``: observed values, NaN where the mask is 0.
  The training split stores nothing else: complete data is out of its reach — except in the
  store of a complete-data oracle (``Layout.train_truth``), whose training split keeps ``truth``.
- ``truth``  float32, same dims, val/test (and an oracle's train): ground truth.
- ``mask``   bool ``(sample, time, y, x)``, shared by all channels.
- ``holdout`` bool ``(sample, time, y, x)``, val/test only and only when configured: observed
  points withheld from the model in the held-out pass (a subset of ``mask``;
  :mod:`incdyn.datasets.holdout`). ``field`` and ``mask`` still hold them.
- one float variable over ``sample`` per physical parameter (``viscosity``, ``f``, ...).
- ``domain`` bool ``(y, x)``, only for data with points outside the physical domain (land under
  a sea field): never observed, never imputed (NaN), never scored; bool ``(sample, y, x)`` when
  each sample has its own (``Layout.sample_domain``: the coastal tiles of a large grid), written
  region by region with the samples.

Root attributes: ``incdyn_config`` (what generated the store, JSON), ``incdyn_complete``,
``normalization`` (per-channel mean/std of the observed *training* values only).
Chunked by sample so that each Ray task writes, and each worker reads, its own region. The same
code serves ``file``, ``memory://`` and ``gs://`` URLs (fsspec).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from incdyn.datasets.errors import UserError

SPLITS = ("train", "val", "test")


class StoreError(UserError):
    """A store is missing, malformed, or lacks a variable: the message names store and variable."""


@dataclass(frozen=True)
class Layout:
    """Shape and metadata of a store.

    Attributes:
        sizes: samples per split, e.g. ``{"train": 256, "val": 32, "test": 64}``.
        channels: channel names.
        time, y, x: coordinate values.
        params: names of per-sample parameters.
        chunk: samples per chunk (and per writing task).
        units: unit strings keyed by channel, param or coordinate name.
        attrs: extra root attributes (the source's metadata, e.g. ERA5's frame cadence).
        holdout: val/test carry a ``holdout`` mask.
        truth: val/test carry ``truth`` (False for a data set's own gaps: there is none).
        domain: bool ``(H, W)``, False outside the physical domain, or None (all inside).
        sample_domain: each sample has its own domain, ``(sample, y, x)``, written with it.
        train_truth: the training split keeps ``truth`` too (a complete-data oracle's store).
    """

    sizes: dict[str, int]
    channels: tuple[str, ...]
    time: np.ndarray
    y: np.ndarray
    x: np.ndarray
    params: tuple[str, ...]
    chunk: int
    units: dict[str, str]
    attrs: dict = dataclasses.field(default_factory=dict)
    holdout: bool = False
    truth: bool = True
    domain: np.ndarray | None = None
    train_truth: bool = False
    sample_domain: bool = False


def _coords(layout: Layout, n: int, start: int = 0) -> dict:
    u = layout.units
    return {
        "sample": ("sample", np.arange(start, start + n)),
        "time": ("time", layout.time, {"units": u.get("time", "")}),
        "channel": ("channel", np.array(layout.channels, dtype=object)),
        "y": ("y", layout.y, {"units": u.get("y", "")}),
        "x": ("x", layout.x, {"units": u.get("x", "")}),
    }


def write_template(url: str, layout: Layout, config: dict) -> None:
    """Create an empty store (NaN fields, all-False masks) with the final shape and chunking."""
    zarr.open_group(url, mode="w")
    t, c, h, w = len(layout.time), len(layout.channels), len(layout.y), len(layout.x)
    for split, n in layout.sizes.items():
        ck = min(layout.chunk, max(n, 1))
        field = da.full((n, t, c, h, w), np.nan, dtype=np.float32, chunks=(ck, t, c, h, w))
        data = {
            "field": (("sample", "time", "channel", "y", "x"), field),
            "mask": (
                ("sample", "time", "y", "x"),
                da.zeros((n, t, h, w), dtype=bool, chunks=(ck, t, h, w)),
            ),
        }
        if layout.domain is not None:
            data["domain"] = (("y", "x"), np.asarray(layout.domain, bool))
        if layout.sample_domain:
            zeros = da.zeros((n, h, w), dtype=bool, chunks=(ck, h, w))  # written per region
            data["domain"] = (("sample", "y", "x"), zeros)
        if layout.truth and (split != "train" or layout.train_truth):
            data["truth"] = (("sample", "time", "channel", "y", "x"), field)
        if split != "train" and layout.holdout:
            data["holdout"] = data["mask"]
        for p in layout.params:
            data[p] = (("sample",), da.full((n,), np.nan, dtype=np.float64, chunks=(ck,)))
        ds = xr.Dataset(data, coords=_coords(layout, n))
        for name in layout.params:
            ds[name].attrs["units"] = layout.units.get(name, "")
        for name in ("field", "truth"):  # per-channel units, in channel order
            if name in ds:
                ds[name].attrs["channel_units"] = [layout.units.get(c, "") for c in layout.channels]
        ds.to_zarr(url, group=split, mode="w", compute=False, consolidated=False)
    root = zarr.open_group(url, mode="a")
    root.attrs.update({**layout.attrs, "incdyn_config": config, "incdyn_complete": False})


def write_region(
    url: str,
    split: str,
    start: int,
    fields: np.ndarray,
    masks: np.ndarray,
    params: dict[str, np.ndarray],
    holdout: np.ndarray | None = None,
    *,
    truth: bool = True,
    train_truth: bool = False,
    domain: np.ndarray | None = None,
) -> None:
    """Write samples ``start : start + n`` of ``split``.

    Args:
        fields: complete fields ``(n, T, C, H, W)``; NaN is written wherever ``masks`` is 0.
        masks: bool ``(n, T, H, W)``.
        params: per-sample parameters, each ``(n,)``.
        holdout: bool ``(n, T, H, W)`` held-out points (val/test of a store that has them).
        truth: write ``fields`` as val/test truth (False for real gaps: there is none).
        train_truth: write it for the training split too (a complete-data oracle's store).
        domain: bool ``(n, H, W)``, the samples' own domains (a store with ``sample_domain``).
    """
    n = fields.shape[0]
    observed = np.where(masks[:, :, None], fields, np.nan).astype(np.float32)
    dims5 = ("sample", "time", "channel", "y", "x")
    data = {"field": (dims5, observed), "mask": (("sample", "time", "y", "x"), masks)}
    if truth and (split != "train" or train_truth):
        data["truth"] = (dims5, fields.astype(np.float32))
    if holdout is not None:
        data["holdout"] = (("sample", "time", "y", "x"), holdout)
    if domain is not None:
        data["domain"] = (("sample", "y", "x"), np.asarray(domain, bool))
    for name, value in params.items():
        data[name] = (("sample",), np.asarray(value, dtype=np.float64))
    ds = xr.Dataset(data)
    ds.to_zarr(url, group=split, region={"sample": slice(start, start + n)}, consolidated=False)


def _channel_sums(url: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    field = open_split(url, "train")["field"]
    chunk = field.encoding.get("chunks", (field.shape[0],))[0]
    c = field.sizes["channel"]
    s, s2, cnt = np.zeros(c), np.zeros(c), np.zeros(c)
    for start in range(0, field.sizes["sample"], chunk):
        block = field.isel(sample=slice(start, start + chunk)).values.astype(np.float64)
        block = np.moveaxis(block, 2, 0).reshape(c, -1)
        ok = np.isfinite(block)
        s += np.where(ok, block, 0).sum(1)
        s2 += np.where(ok, block**2, 0).sum(1)
        cnt += ok.sum(1)
    return s, s2, cnt


def finalize(url: str) -> dict:
    """Compute normalisation from observed training values only, then mark the store complete."""
    s, s2, cnt = _channel_sums(url)
    if (cnt == 0).any():
        raise StoreError(f"store {url}: a channel has no observed training value")
    mean = s / cnt
    std = np.sqrt(np.maximum(s2 / cnt - mean**2, 0.0))
    std = np.where(std > 0, std, 1.0)
    channels = [str(c) for c in open_split(url, "train")["channel"].values]
    norm = {"channels": channels, "mean": mean.tolist(), "std": std.tolist(), "count": cnt.tolist()}
    root = zarr.open_group(url, mode="a")
    root.attrs.update({"normalization": norm, "incdyn_complete": True})
    with warnings.catch_warnings():  # zarr 3: consolidated metadata is an extension of format 3
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(url)  # plain xr.open_zarr reads it in one request
    return norm


def store_attrs(url: str) -> dict:
    """Root attributes of a store, or ``{}`` when there is no store at ``url``."""
    try:
        return dict(zarr.open_group(url, mode="r").attrs)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return {}


def is_complete(url: str, config: dict) -> bool:
    """True when ``url`` holds a finished store generated from exactly ``config``."""
    attrs = store_attrs(url)
    return bool(attrs.get("incdyn_complete")) and _canonical(
        attrs.get("incdyn_config")
    ) == _canonical(config)


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def open_split(
    url: str, split: str, variables: Iterable[str] = (), *, dask: bool = True
) -> xr.Dataset:
    """Open one split lazily; raise :class:`StoreError` naming the store/variable when malformed.

    ``dask=False`` gives lazily indexed variables read straight through zarr: no task graph
    and no thread pool per read, which suits many small reads (one chunk at a time).
    """
    if split not in SPLITS:
        raise StoreError(f"split {split!r} is not one of {SPLITS}")
    try:
        options = {} if dask else {"chunks": None}
        ds = xr.open_zarr(url, group=split, consolidated=False, **options)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError, ValueError) as exc:
        raise StoreError(f"store {url}: cannot open group {split!r} ({exc})") from exc
    for name in ("field", "mask", *variables):
        if name not in ds:
            raise StoreError(f"store {url}: group {split!r} has no variable {name!r}")
    dims = ds["field"].dims
    if dims != ("sample", "time", "channel", "y", "x"):
        raise StoreError(
            f"store {url}: {split}/field has dims {dims}, expected (sample, time, channel, y, x)"
        )
    return ds


def normalization(url: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)`` stored by :func:`finalize`."""
    norm = store_attrs(url).get("normalization")
    if not norm:
        raise StoreError(f"store {url}: no 'normalization' attribute (unfinished store?)")
    return np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)


def store_domain(ds) -> np.ndarray | None:
    """bool ``(y, x)``, or ``(sample, y, x)`` when each sample has its own: a split's physical
    domain (its ``domain`` variable), or None when every point is inside."""
    return ds["domain"].values.astype(bool) if "domain" in ds else None


def domain_of_samples(domain: np.ndarray | None, samples: np.ndarray) -> np.ndarray | None:
    """The domain of the split's samples ``samples`` (indices): a per-sample domain
    ``(sample, y, x)`` is indexed, a shared ``(y, x)`` one (or None) is returned as it is."""
    return domain[np.asarray(samples)] if domain is not None and domain.ndim == 3 else domain


def broadcast_domain(domain: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """bool ``shape`` (``(N, ..., H, W)``): ``domain`` ``(H, W)`` for every sample, or
    ``(N, H, W)`` each sample's own, over the axes between."""
    if domain.ndim == 3:
        domain = domain.reshape(domain.shape[0], *([1] * (len(shape) - 3)), *domain.shape[1:])
    return np.broadcast_to(domain, shape)
