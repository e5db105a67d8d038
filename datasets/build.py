"""Build a data set's store: PDE generation and masking as Ray tasks, one store region each.

Every task simulates a shard of samples (or, for real data such as ERA5, reads them in order:
see :func:`split_offset`), draws their observation masks (seeded per sample) and writes its own
region of the zarr store; a progress bar follows the tasks as they finish. The
normalisation statistics are computed from observed training values at the end. A second call
with the same settings finds the finished store and reuses it. ``memory://`` stores live in one
process, so they are built inline without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import ray
import torch
from tqdm import tqdm

from incdyn.datasets.generators import GENERATORS, make_config
from incdyn.datasets.holdout import HoldoutSpec, holdout_for_samples
from incdyn.datasets.masks import MaskFamily, identity, masks_for_samples
from incdyn.datasets.store import (
    SPLITS,
    Layout,
    StoreError,
    finalize,
    is_complete,
    store_attrs,
    write_region,
    write_template,
)

FORMAT_VERSION = 1


def store_config(
    *,
    source: str,
    preset: str,
    params: dict,
    sizes: dict[str, int],
    chunk: int,
    family: MaskFamily,
    seed: int,
    test_family: MaskFamily | None = None,
    holdout: HoldoutSpec | None = None,
    train_truth: bool = False,
) -> dict:
    """Everything that determines a store's content (its identity for reuse).

    ``test_family`` draws the val/test masks from another family (cross-distribution, App. G.3);
    ``holdout`` adds held-out points to val/test (absent: the store is as without it);
    ``train_truth`` keeps the complete training fields (a complete-data oracle's store; every
    other array is as without it).
    """
    cfg = make_config(source, preset, params)
    extra = {"test_masks": identity(test_family)} if test_family else {}
    if holdout is not None:
        extra["holdout"] = holdout.model_dump()
    if train_truth:
        extra["train_truth"] = True
    return {
        **extra,
        "format": FORMAT_VERSION,
        "source": source,
        "generator": cfg.identity(),
        "sizes": sizes,
        "chunk": chunk,
        "masks": identity(family),
        "seed": seed,
    }


def _shard_seed(seed: int, split: str, start: int) -> int:
    return (
        seed * 7_777_777 + {"train": 11, "val": 23, "test": 37}[split] * 1_000_003 + start
    ) % 2**62


def split_offset(config: dict, split: str) -> int:
    """Position of ``split``'s first sample in the sequence ``train | val | test``.

    Ordered sources (``Generator.ordered``: real data such as ERA5) are not drawn from the shard
    seed: sample ``i`` of ``split`` is item ``split_offset + i`` of the source (the ERA5 window of
    that number, in time order), so the splits take consecutive, disjoint ranges: training first.
    """
    offset = 0
    for name in SPLITS:
        if name == split:
            return offset
        offset += config["sizes"].get(name, 0)
    raise ValueError(f"split {split!r} is not one of {SPLITS}")


def _generator(config: dict):
    gen = GENERATORS[config["source"]]
    return gen, gen.config_cls.model_validate(config["generator"])


def build_shard(url: str, config: dict, split: str, start: int, n: int) -> int:
    """Simulate, mask and write samples ``start : start + n`` of ``split``."""
    gen, cfg = _generator(config)
    order = {"offset": split_offset(config, split) + start} if gen.ordered else {}
    if gen.by_split:
        order = {"split": split, "start": start}
    sim = gen.generate(
        cfg, n, torch.Generator().manual_seed(_shard_seed(config["seed"], split, start)), **order
    )
    _, t, _, h, w = sim.fields.shape
    family = MaskFamily(**config["masks"])
    if split != "train" and "test_masks" in config:
        family = MaskFamily(**config["test_masks"])
    if sim.masks is not None:  # the data's own gaps; held-out units are clumped patches
        masks, family = sim.masks, None
    else:
        masks = masks_for_samples(family, config["seed"], split, range(start, start + n), t, h, w)
    own = sim.domain is not None and sim.domain.ndim == 3  # each sample's own domain
    if sim.domain is not None:  # never observed outside it
        inside = torch.from_numpy(np.array(sim.domain, dtype=bool))
        masks = masks & (inside[:, None] if own else inside)
    params = {k: v.double().numpy() for k, v in sim.params.items()}
    held = None
    if split != "train" and "holdout" in config:
        spec = HoldoutSpec(**config["holdout"])
        held = holdout_for_samples(masks.numpy(), family, spec, split, range(start, start + n))
    fields, masks = sim.fields.numpy(), masks.numpy()
    write_region(
        url,
        split,
        start,
        fields,
        masks,
        params,
        held,
        truth=sim.masks is None,
        train_truth=bool(config.get("train_truth")),
        domain=sim.domain if own else None,
    )
    return n


_build_shard_task = ray.remote(num_cpus=1)(build_shard)


def plan_store(url: str, config: dict) -> Layout | None:
    """The layout of the store ``config`` describes, or None when ``url`` already holds it.

    Everything a user can get wrong fails here, in the calling process and before any Ray task:
    a finished store from other settings, a missing file, variable or dimension, a split larger
    than the data (each source is probed at its last sample).
    """
    if is_complete(url, config):
        return None
    attrs = store_attrs(url)
    if attrs.get("incdyn_complete"):
        raise StoreError(
            "data.store",
            f"{url} holds a finished data set generated from other settings",
            "remove it, or point data.store elsewhere",
        )
    gen, cfg = _generator(config)
    total = sum(config["sizes"].values())
    # an ordered source is probed at its last sample: too few samples fail before any writing
    last = {"offset": total - 1} if gen.ordered else {}
    if gen.by_split:  # each split probed at its last sample
        for split, n in config["sizes"].items():
            probe = gen.generate(cfg, 1, torch.Generator(), split=split, start=n - 1)
    else:
        probe = gen.generate(cfg, 1, torch.Generator().manual_seed(0), **last)
    own = probe.domain is not None and probe.domain.ndim == 3  # a domain per sample
    return Layout(
        sizes=config["sizes"],
        channels=probe.channels,
        time=np.asarray(probe.time, np.float64),
        y=np.asarray(probe.y, np.float64),
        x=np.asarray(probe.x, np.float64),
        params=tuple(probe.params),
        chunk=config["chunk"],
        units=probe.units,
        attrs=probe.attrs,
        holdout="holdout" in config,
        truth=probe.masks is None,
        domain=None if own else probe.domain,
        train_truth=bool(config.get("train_truth")),
        sample_domain=own,
    )


def build_store(
    url: str,
    config: dict,
    *,
    progress: bool = True,
    use_ray: bool | None = None,
    on_shard: Callable[[], None] | None = None,
) -> str:
    """Generate the store described by ``config`` at ``url`` unless it already exists;
    ``on_shard`` is called after each shard is written.

    Returns ``"reused"`` or ``"generated"``. A finished store built from other settings is never
    overwritten: that is an error naming the store.
    """
    layout = plan_store(url, config)
    if layout is None:
        return "reused"
    total = sum(config["sizes"].values())
    write_template(url, layout, config)
    jobs = [
        (split, start, min(config["chunk"], n - start))
        for split, n in config["sizes"].items()
        for start in range(0, n, config["chunk"])
    ]
    inline = url.startswith("memory://") if use_ray is None else not use_ray
    t0 = time.perf_counter()
    with tqdm(
        total=total, desc=f"generating {config['source']}", unit="sample", disable=not progress
    ) as bar:
        if inline:
            for split, start, n in jobs:
                bar.update(build_shard(url, config, split, start, n))
                if on_shard:
                    on_shard()
        else:
            pending = [_build_shard_task.remote(url, config, *job) for job in jobs]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(ray.get(done[0]))
                if on_shard:
                    on_shard()
    finalize(url)
    if progress:
        print(f"store {url}: {total} samples in {time.perf_counter() - t0:.1f} s")
    return "generated"
