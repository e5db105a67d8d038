"""Impute the test split with a trained model or a classical baseline, and score it.

Diffusion methods run the single-step ensemble (Sec. 3.3) batch by batch in the calling
process; classical baselines run as Ray tasks, one per store chunk of test samples. Both feed the
same :class:`~incdyn.datasets.metrics.SquaredError`, so every method is scored by one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import torch
from torch.utils.data import DataLoader

from incdyn.datasets.metrics import SquaredError
from incdyn.datasets.store import normalization, open_split
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.classical import impute_batch
from incdyn.models.ensemble import ensemble_impute
from incdyn.platform.checkpoint import load_denoiser
from incdyn.platform.train_loop import partition_for


@dataclass
class Evaluation:
    """Scores plus one sample kept for the figure (``(T, C, H, W)`` arrays, mask ``(T, H, W)``)."""

    metrics: dict[str, float]
    example_truth: np.ndarray
    example_mask: np.ndarray
    example_imputed: np.ndarray


def _n_test(url: str, max_samples: int | None) -> int:
    n = open_split(url, "test").sizes["sample"]
    return n if max_samples is None else min(n, max_samples)


def evaluate_diffusion(
    checkpoint_dir: str | Path,
    *,
    store_url: str,
    ensemble: int,
    batch_size: int,
    max_samples: int | None,
    seed: int,
    device: str = "cpu",
) -> Evaluation:
    """Single-step ensemble imputation of the test split with a trained checkpoint."""
    denoiser, meta = load_denoiser(checkpoint_dir, device)
    spec = meta["spec"]
    partition = partition_for(meta["method"], spec["data"]["observation"])
    test = SplitDataset(store_url, "test", with_truth=True, limit=_n_test(store_url, max_samples))
    acc = SquaredError(test.channels)
    g = torch.Generator(device=device).manual_seed(seed + 7)
    example = None
    for batch in DataLoader(test, batch_size=batch_size):
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        imputed, _ = ensemble_impute(denoiser, x, m, partition, k=ensemble, generator=g)
        imputed_phys = test.denormalise(imputed)
        truth_phys = test.denormalise(batch["truth"])
        mask = batch["mask"].numpy()
        acc.update(imputed_phys, truth_phys, mask, test.std.ravel())
        if example is None:
            example = (truth_phys[0], mask[0], imputed_phys[0])
    return Evaluation(acc.result(), *example)


def _classical_shard(name: str, url: str, start: int, stop: int) -> tuple[SquaredError, tuple]:
    ds = open_split(url, "test", ["truth"]).isel(sample=slice(start, stop))
    values, mask, truth = ds["field"].values, ds["mask"].values, ds["truth"].values
    imputed = impute_batch(name, values.astype(np.float32), mask.astype(bool))
    _, std = normalization(url)
    acc = SquaredError(tuple(str(c) for c in ds["channel"].values))
    acc.update(imputed, truth, mask, std)
    return acc, (truth[0], mask[0], imputed[0])


_classical_task = ray.remote(num_cpus=1)(_classical_shard)


def evaluate_classical(kind: str, *, store_url: str, max_samples: int | None) -> Evaluation:
    """Classical baseline over the test split, one Ray task per store chunk."""
    n = _n_test(store_url, max_samples)
    chunk = open_split(store_url, "test")["field"].encoding.get("chunks", (n,))[0]
    ranges = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    if store_url.startswith("memory://") or not ray.is_initialized():
        parts = [_classical_shard(kind, store_url, a, b) for a, b in ranges]
    else:
        parts = ray.get([_classical_task.remote(kind, store_url, a, b) for a, b in ranges])
    acc = parts[0][0]
    for other, _ in parts[1:]:
        acc.merge(other)
    return Evaluation(acc.result(), *parts[0][1])
