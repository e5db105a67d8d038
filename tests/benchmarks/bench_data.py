"""Benchmark item 6: the data path. Samples/s that a training worker reads from the zarr store
(``SplitDataset`` through the loop's ``DataLoader``) vs the same items held in memory, and the
generation throughput of every PDE generator as 1 and as 2 concurrent Ray tasks (1 core each).
"""

from __future__ import annotations

import time
from typing import Any

import ray
import torch
from bench_lib import interleaved, row
from torch.utils.data import DataLoader, Dataset

from incdyn.datasets.chunk_sampler import ChunkShuffleSampler
from incdyn.datasets.torch_dataset import SplitDataset

READ_TARGET = 0.9  # zarr samples/s over in-memory samples/s
# (source, preset, samples per task): each task ~1–2 s on one core of this machine
GENERATION = [
    ("navier_stokes", "quickstart", 128),
    ("shallow_water", "small", 160),
    ("advection", "small", 4096),
]
GENERATION_PAPER = [
    ("navier_stokes", "paper", 4),
    ("shallow_water", "paper", 12),
    ("advection", "paper", 256),
]


class InMemory(Dataset):
    """The same items held in memory: the split stacked into tensors once, indexed per item
    (as ``TensorDataset`` does)."""

    def __init__(self, source: Dataset) -> None:
        items = [source[i] for i in range(len(source))]
        self.x = torch.stack([it["x_obs"] for it in items])
        self.mask = torch.stack([it["mask"] for it in items])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"index": torch.tensor(i), "x_obs": self.x[i], "mask": self.mask[i]}


def _epochs(datasets: list[Dataset]) -> int:
    """Read one shuffled epoch of each data set as the training loop does (batch 8, drop_last)."""
    n = 0
    for dataset in datasets:
        g = torch.Generator().manual_seed(n)
        for batch in DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True, generator=g):
            n += batch["x_obs"].shape[0]
    return n


def _chunked_epochs(datasets: list[SplitDataset]) -> int:
    """One epoch of each as the training loop reads a split larger than its cache
    (``platform/train/worker.py`` ``build_training_loader``: the chunk-aware shuffle)."""
    n = 0
    for epoch, ds in enumerate(datasets):
        sampler = ChunkShuffleSampler(len(ds), ds.chunk, window=ds.cache_chunks, seed=0)
        sampler.set_epoch(epoch)
        for batch in DataLoader(ds, batch_size=8, sampler=sampler, drop_last=True):
            n += batch["x_obs"].shape[0]
    return n


def read_path(url: str, *, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    """Samples/s of shuffled epochs (batch 8) from: ``memory``; ``zarr_warm``, one
    ``SplitDataset`` whose chunk cache holds the split (every epoch after its first);
    ``zarr_cold``, the first epoch of a fresh ``SplitDataset`` (opens the store, decodes every
    chunk); ``zarr_small_cache``, a cache of one chunk (a split 4× the cache: shuffled reads
    decode a chunk for most samples); ``zarr_small_cache_chunked``, the same cache read in the
    training loader's chunk-aware shuffle (each chunk decoded once per epoch)."""
    warm_set = SplitDataset(url, "train")
    memory = InMemory(warm_set)
    chunk_bytes = sum(v.nbytes for v in warm_set._load(0).values())
    n, epochs, repeat = len(warm_set), 3 if quick else 10, 3 if quick else 5
    fresh = [SplitDataset(url, "train") for _ in range((repeat + 1) * epochs)]
    small = SplitDataset(url, "train", cache_bytes=chunk_bytes)
    fns = {
        "memory": lambda: _epochs([memory] * epochs),
        "zarr_warm": lambda: _epochs([warm_set] * epochs),
        "zarr_cold": lambda: _epochs([fresh.pop() for _ in range(epochs)]),
        "zarr_small_cache": lambda: _epochs([small] * epochs),
        "zarr_small_cache_chunked": lambda: _chunked_epochs([small] * epochs),
    }
    t = interleaved(fns, repeat=repeat)
    per_call = (n // 8) * 8 * epochs
    rates = {k: per_call / v["best"] for k, v in t.items()}
    out = {"samples": n, "sample_shape": list(warm_set.shape), "chunk": warm_set.chunk,
           "samples_per_s": rates, "times": t}  # fmt: skip
    rows = [row("6", f"read samples/s, in memory ({n} samples of {warm_set.shape})",
                rates["memory"], "sample/s")]  # fmt: skip
    labels = {"zarr_warm": "chunk cache warm", "zarr_cold": "first epoch, chunks decoded",
              "zarr_small_cache": "split = 4x the cache, plain shuffle",
              "zarr_small_cache_chunked": "split = 4x the cache, chunk-aware shuffle"}  # fmt: skip
    for key, label in labels.items():
        ratio = rates[key] / rates["memory"]
        out[f"ratio_{key}"] = ratio
        target = key == "zarr_warm"  # the steady state of a training worker
        rows.append(row("6", f"zarr store ({label}) {rates[key]:.0f} sample/s / memory", ratio,
                        "ratio", target=f">= {READ_TARGET}" if target else "",
                        met=ratio >= READ_TARGET if target else None))  # fmt: skip
    return rows, out


def _generation_task():
    """A Ray task (1 CPU, 1 torch thread) that times ``generate`` of ``n`` samples. Built in a
    closure so that Ray ships it by value (this folder is not importable in Ray's workers)."""

    def generate(source: str, preset: str, n: int, seed: int) -> float:
        import time

        import torch

        from incdyn.datasets.generators import GENERATORS, make_config

        torch.set_num_threads(1)
        cfg = make_config(source, preset, {})
        t0 = time.perf_counter()
        GENERATORS[source].generate(cfg, n, torch.Generator().manual_seed(seed))
        return time.perf_counter() - t0

    return ray.remote(num_cpus=1)(generate)


def generation(*, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    """Needs a running Ray instance with 2 CPUs. ``per core``: samples / in-task seconds of one
    task alone; ``scaling``: wall-clock throughput of 2 concurrent tasks over 1 task."""
    task = _generation_task()
    ray.get([task.remote("advection", "small", 1, s) for s in range(2)])  # start 2 workers
    cases = GENERATION if quick else GENERATION + GENERATION_PAPER
    rows, out = [], {}
    for source, preset, n in cases:
        n = max(1, n // 2) if quick else n
        ray.get(task.remote(source, preset, 1, 0))  # warm the code path
        t0 = time.perf_counter()
        alone = ray.get(task.remote(source, preset, n, 1))
        wall1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        pair = ray.get([task.remote(source, preset, n, s) for s in (2, 3)])
        wall2 = time.perf_counter() - t0
        per_core = n / alone
        scaling = (2 * n / wall2) / (n / wall1)
        out[f"{source}/{preset}"] = {"n_per_task": n, "task_s_alone": alone, "wall_1_task_s":
                                     wall1, "task_s_pair": pair, "wall_2_tasks_s": wall2,
                                     "samples_per_s_per_core": per_core, "scaling_1_to_2":
                                     scaling}  # fmt: skip
        rows.append(row("6", f"generate {source}/{preset}: samples/s per core; 2 tasks / 1 task "
                        f"= {scaling:.2f}x (ideal 2)", per_core, "sample/s"))  # fmt: skip
    return rows, out
