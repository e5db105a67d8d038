"""Streaming reads: memory stays bounded while a store many times larger is read.

A synthetic store is written directly with datasets/store.py (random values, no PDE solve):
the training split holds 72 MiB of arrays, the test split 68 MiB. ``SplitDataset`` reads it
chunk by chunk through a 4 MiB cache, in the two patterns the platform uses: one Ray Train
worker's shard in shuffled order (the ``DistributedSampler`` that ``prepare_data_loader`` adds),
and the test split in order with ground truth (evaluation). Two measures of memory:

- ``tracemalloc`` peak: every Python and numpy allocation (decoded chunks, cached blocks, items);
- resident-set growth (Linux ``/proc``) after a warm-up of 32 scattered reads, which pays
  one-off initialisation and lets the allocator reach its working size: everything the process
  holds, torch tensors and native buffers included (what a leak would show).

A control run with an unbounded cache shows that the measure sees the data it reads.
"""

from __future__ import annotations

import os
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader, DistributedSampler

from incdyn.datasets.store import Layout, finalize, write_region, write_template
from incdyn.datasets.torch_dataset import SplitDataset

MiB = 2**20
CACHE = 4 * MiB  # the memory bound set for the chunk cache
RSS_BOUND = 6 * CACHE  # growth past the warm-up, allocator slack included: a third of the split
FRAMES, CHANNELS, GRID, CHUNK = 8, 2, 64, 4  # 288 KiB per training sample, 1.1 MiB per chunk
SIZES = {"train": 256, "val": CHUNK, "test": 128}
BATCH = 4


def write_random_store(url: str, *, seed: int = 0) -> int:
    """A complete store of random fields and masks; returns the bytes of its arrays."""
    t, c, g = FRAMES, CHANNELS, GRID
    axis = np.arange(g, dtype=np.float64)
    layout = Layout(
        sizes=SIZES,
        channels=tuple(f"c{i}" for i in range(c)),
        time=np.arange(t, dtype=np.float64),
        y=axis,
        x=axis,
        params=(),
        chunk=CHUNK,
        units={},
    )
    write_template(url, layout, {"synthetic": "streaming test"})
    rng = np.random.default_rng(seed)
    total = 0
    for split, n in SIZES.items():
        for start in range(0, n, CHUNK):
            fields = rng.standard_normal((CHUNK, t, c, g, g), dtype=np.float32)
            masks = rng.random((CHUNK, t, g, g)) < 0.5
            write_region(url, split, start, fields, masks, {})
            total += masks.nbytes + fields.nbytes * (1 if split == "train" else 2)
    finalize(url)
    return total


def split_bytes(split: str) -> int:
    """Bytes of a split's arrays: float32 field (and truth, val/test), bool mask."""
    field = 4 * CHANNELS * FRAMES * GRID * GRID
    return SIZES[split] * (field * (1 if split == "train" else 2) + FRAMES * GRID * GRID)


def _rss() -> int:
    """Resident set size in bytes (Linux); 0 elsewhere, where the RSS checks are skipped."""
    statm = Path("/proc/self/statm")
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") if statm.exists() else 0


@contextmanager
def measured():
    """Yields a dict that receives ``traced`` (tracemalloc peak) and ``rss`` (peak growth)."""
    out = {"rss": 0}
    base = _rss()
    out["sample"] = lambda: out.update(rss=max(out["rss"], _rss() - base))
    tracemalloc.start()
    try:
        yield out
    finally:
        out["traced"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def _read_all(loader: DataLoader, probe: dict) -> int:
    n = 0
    for batch in loader:
        n += batch["x_obs"].shape[0]
        probe["sample"]()
    return n


@pytest.fixture(scope="module", params=["file", "memory"])
def store(request, tmp_path_factory):
    if request.param == "file":
        url = str(tmp_path_factory.mktemp("streaming") / "big.zarr")
    else:
        url = "memory://incdyn-streaming-test/big.zarr"
    nbytes = write_random_store(url)
    yield url, nbytes
    if request.param == "memory":
        import fsspec

        fsspec.filesystem("memory").rm("/incdyn-streaming-test", recursive=True)


def _warm_up(ds: SplitDataset) -> int:
    """Pays one-off costs (imports, codec set-up, allocator arenas); returns the traced bound.

    The bound: the cache, plus the transient copies of one chunk being read, decoded and
    normalised (4 chunks' worth), plus the chunks a batch still pins (items are views of their
    cached chunk until collation: up to ``BATCH`` evicted chunks in shuffled order).
    """
    for i in range(32):
        ds[(i * 37) % len(ds)]
    block = next(iter(ds._cache.values()))
    return CACHE + (4 + BATCH) * sum(v.nbytes for v in block.values())


def test_a_shuffled_training_shard_streams_with_bounded_memory(store):
    url, nbytes = store
    ds = SplitDataset(url, "train", cache_bytes=CACHE)
    bound = _warm_up(ds)
    sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=0)
    with measured() as m:
        n = _read_all(DataLoader(ds, batch_size=BATCH, sampler=sampler), m)
    assert n == len(ds) // 2
    assert ds._cached_bytes <= CACHE
    print(
        f"\n{url}: store {nbytes / MiB:.0f} MiB, train split {split_bytes('train') / MiB:.0f} MiB, "
        f"shard {n} samples: traced peak {m['traced'] / MiB:.1f} MiB, "
        f"RSS growth {m['rss'] / MiB:.1f} MiB (cache {CACHE / MiB:.0f} MiB, bound {bound / MiB:.1f})"
    )
    assert m["traced"] < bound < split_bytes("train") / 5
    if Path("/proc/self/statm").exists():
        assert m["rss"] < RSS_BOUND <= split_bytes("train") / 3


def test_evaluation_streams_the_test_split_with_bounded_memory(store):
    url, _ = store
    ds = SplitDataset(url, "test", with_truth=True, cache_bytes=CACHE)
    bound = _warm_up(ds)
    with measured() as m:
        n = _read_all(DataLoader(ds, batch_size=BATCH), m)
    assert n == SIZES["test"]
    print(
        f"\n{url}: test split in order: traced peak {m['traced'] / MiB:.1f} MiB, "
        f"RSS growth {m['rss'] / MiB:.1f} MiB (bound {bound / MiB:.1f})"
    )
    assert m["traced"] < bound < split_bytes("test") / 3
    if Path("/proc/self/statm").exists():
        assert m["rss"] < RSS_BOUND


def test_control_an_unbounded_cache_holds_all_it_read(store):
    """The measure is not blind: without the bound, memory grows with what was read."""
    url, _ = store
    if not url.startswith("/"):
        pytest.skip("one control is enough")
    ds = SplitDataset(url, "train", cache_bytes=2**40)
    sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False)
    with measured() as m:
        _read_all(DataLoader(ds, batch_size=BATCH, sampler=sampler), m)
    held = ds._cached_bytes  # every chunk: rank 0's samples 0, 2, 4, ... touch them all
    print(f"\nunbounded cache: traced peak {m['traced'] / MiB:.1f} MiB")
    assert held > 8 * CACHE and m["traced"] > 0.9 * held
