"""Impute the test split with a trained model or a classical baseline, and score it.

Diffusion methods run the single-step ensemble (Sec. 3.3) batch by batch in the calling
process; classical baselines run as Ray tasks, one per store chunk of test samples. Both feed the
same :class:`~incdyn.datasets.metrics.squared_error.SquaredError`, so every method is scored by one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import torch
from torch.utils.data import DataLoader

from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.metrics.scoring import physics_context, score
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.store import normalization, open_split
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.baselines.classical import impute_batch
from incdyn.models.partition import Partition
from incdyn.models.samplers.multistep import (
    cross_distribution_ratio,
    direct_impute,
    multistep_impute,
)
from incdyn.models.samplers.single import ensemble_impute
from incdyn.platform.checkpoint import load_denoiser
from incdyn.platform.console import evaluation_bar
from incdyn.platform.train.worker import partition_for


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


def inference_partition(meta: dict, test_observation: dict | None) -> Partition:
    """The partition used at inference: the training one, with the context ratio rescaled when
    the test observation ratio differs from the training one (App. G.3)."""
    spec = meta["spec"]
    observation = spec["data"]["observation"]
    partition = partition_for(meta["method"], observation)
    if partition.kind == "pixel" and test_observation and test_observation["kind"] == "pixel":
        ratio = cross_distribution_ratio(
            observation["p"], partition.context_ratio, test_observation["p"]
        )
        partition = partition.with_context_ratio(ratio)
    return partition


def _impute(
    kind: str, denoiser, x, m, partitions, family, sampler: dict, ensemble: int, g, mu0=None
):
    """``partitions``: (inference partition, training partition); they differ only when the test
    observation ratio differs from the training one (App. G.3)."""
    partition, trained = partitions
    if kind == "single":
        return ensemble_impute(denoiser, x, m, partition, k=ensemble, generator=g)
    if kind == "direct":
        return direct_impute(denoiser, x, m, generator=g)
    return multistep_impute(
        denoiser,
        x,
        m,
        partition,
        family,
        steps=sampler["steps"],
        weight=sampler["weight"],
        k=ensemble,
        generator=g,
        mu0=mu0,
        step_partition=trained,  # M′ over the whole grid at the training-time density
    )


def diffusion_options(spec, method) -> dict:
    """The keyword arguments of :func:`evaluate_diffusion` that a spec and a diffusion method
    fix (everything but the checkpoint and the store): one place for ``incdyn run`` and sweeps."""
    ev = spec.evaluation
    return {
        "ensemble": method.ensemble,
        "sampler": method.sampler.model_dump(),
        "batch_size": ev.batch_size,
        "max_samples": ev.max_samples,
        "val_samples": ev.val_samples,
        "seed": spec.seed,
        "device": "cuda" if spec.ray.use_gpu else "cpu",
    }


def _impute_split(
    split: str,
    kinds: list[str],
    denoiser,
    *,
    meta: dict,
    store_url: str,
    sampler: dict,
    ensemble: int,
    batch_size: int,
    limit: int | None,
    seed: int,
    device: str,
) -> tuple[dict[str, dict[str, float]], dict[str, tuple]]:
    """Impute ``split`` (``val`` or ``test``) with each sampler of ``kinds``; metrics per kind
    (keys ``test_*`` as :class:`SquaredError` names them) and the first sample per kind."""
    spec = meta["spec"]
    test_obs = spec["data"].get("test_observation")
    partitions = (
        inference_partition(meta, test_obs),
        partition_for(meta["method"], spec["data"]["observation"]),
    )
    family = MaskFamily(**spec["data"]["observation"])
    data = SplitDataset(store_url, split, with_truth=True, limit=limit)
    physics = physics_context(open_split(store_url, split), spec["data"]["source"])
    accs = {k: SquaredError(data.channels) for k in kinds}
    examples: dict[str, tuple] = {}
    # the same masks and noise for every split's first batch would tie val to test: offset them
    g = torch.Generator(device=device).manual_seed(seed + (7 if split == "test" else 11))
    bar = evaluation_bar(len(data), f"impute {split}")
    for batch in DataLoader(data, batch_size=batch_size):
        bar.update(len(batch["index"]))
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        truth_phys = data.denormalise(batch["truth"])
        mask = batch["mask"].numpy()
        mu0 = None
        for kind in kinds:
            imputed, _ = _impute(
                kind, denoiser, x, m, partitions, family, sampler, ensemble, g, mu0
            )
            if kind == "single":
                mu0 = imputed  # the multi-step sampler's μ₀ is the single-step estimate
            imputed_phys = data.denormalise(imputed)
            accs[kind].update(imputed_phys, truth_phys, mask, data.std.ravel())
            accs[kind].add(score(imputed_phys, truth_phys, batch["index"].numpy(), physics))
            examples.setdefault(kind, (truth_phys[0], mask[0], imputed_phys[0]))
    bar.close()
    return {k: acc.result() for k, acc in accs.items()}, examples


def evaluate_diffusion(
    checkpoint_dir: str | Path,
    *,
    store_url: str,
    ensemble: int,
    batch_size: int,
    max_samples: int | None,
    seed: int,
    sampler: dict | None = None,
    device: str = "cpu",
    val_samples: int | None = None,
) -> Evaluation:
    """Impute the validation and test splits with a trained checkpoint and score them.

    ``sampler["kind"]``: ``single`` (ensemble, Sec. 3.3), ``multi`` (Alg. 4), ``direct``
    (full mask as context, Table 4) or ``best`` — the paper's rule for diffusion baselines
    (report the better of single and multi), with the choice made on the **validation** split
    (``val_mse_single``, ``val_mse_multi``; ``sampler_used``: 0 single, 1 multi) and only the
    chosen sampler run on the test split, so that nothing is tuned on test data.

    Returns the test metrics (``test_*``) and the validation metrics of the sampler used
    (``val_mse``, ``val_mse_unobserved``: what settings are chosen by, e.g. the best ratio of
    Table 6). ``val_samples`` limits the validation samples (default: all).
    """
    sampler = sampler or {"kind": "single", "steps": 50, "weight": "t"}
    denoiser, meta = load_denoiser(checkpoint_dir, device)
    common = dict(
        meta=meta,
        store_url=store_url,
        sampler=sampler,
        ensemble=ensemble,
        batch_size=batch_size,
        seed=seed,
        device=device,
    )
    kinds = ["single", "multi"] if sampler["kind"] == "best" else [sampler["kind"]]
    val, _ = _impute_split("val", kinds, denoiser, limit=val_samples, **common)
    chosen = min(kinds, key=lambda k: val[k]["test_mse"])
    test, examples = _impute_split(
        "test", [chosen], denoiser, limit=_n_test(store_url, max_samples), **common
    )
    metrics = dict(test[chosen])
    metrics["val_mse"] = val[chosen]["test_mse"]
    metrics["val_mse_unobserved"] = val[chosen]["test_mse_unobserved"]
    if len(kinds) > 1:
        for k in kinds:
            metrics[f"val_mse_{k}"] = val[k]["test_mse"]
        metrics["sampler_used"] = float(kinds.index(chosen))
    return Evaluation(metrics, *examples[chosen])


def _classical_shard(
    name: str, url: str, start: int, stop: int, source: str
) -> tuple[SquaredError, tuple]:
    split = open_split(url, "test", ["truth"])
    physics = physics_context(split, source)
    ds = split.isel(sample=slice(start, stop))
    values, mask, truth = ds["field"].values, ds["mask"].values, ds["truth"].values
    imputed = impute_batch(name, values.astype(np.float32), mask.astype(bool))
    _, std = normalization(url)
    acc = SquaredError(tuple(str(c) for c in ds["channel"].values))
    acc.update(imputed, truth, mask, std)
    acc.add(score(imputed, truth, np.arange(start, stop), physics))
    return acc, (truth[0], mask[0], imputed[0])


_classical_task = ray.remote(num_cpus=1)(_classical_shard)


def evaluate_classical(
    kind: str, *, store_url: str, max_samples: int | None, source: str
) -> Evaluation:
    """Classical baseline over the test split, one Ray task per store chunk."""
    n = _n_test(store_url, max_samples)
    chunk = open_split(store_url, "test")["field"].encoding.get("chunks", (n,))[0]
    ranges = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    if store_url.startswith("memory://") or not ray.is_initialized():
        parts = [_classical_shard(kind, store_url, a, b, source) for a, b in ranges]
    else:
        parts = ray.get([_classical_task.remote(kind, store_url, a, b, source) for a, b in ranges])
    acc = parts[0][0]
    for other, _ in parts[1:]:
        acc.merge(other)
    return Evaluation(acc.result(), *parts[0][1])
