"""Impute the test split with a trained model or a classical baseline, and score it.

Diffusion methods run the single-step ensemble (Sec. 3.3) batch by batch in the calling
process; classical baselines run as Ray tasks, one per store chunk of test samples. Both feed the
same :class:`~incdyn.datasets.metrics.squared_error.SquaredError`, so every method is scored by one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from torch.utils.data import DataLoader

from incdyn.datasets.metrics.scoring import physics_context, score
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.store import normalization, open_split
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.baselines.classical import impute_batch
from incdyn.models.samplers.registry import SamplerPlan, impute
from incdyn.platform.checkpoint import load_denoiser
from incdyn.platform.sampling import sampler_plan
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec


@dataclass
class Evaluation:
    """Scores plus one sample kept for the figure (``(T, C, H, W)`` arrays, mask ``(T, H, W)``)."""

    metrics: dict[str, float]
    example_truth: np.ndarray
    example_mask: np.ndarray
    example_imputed: np.ndarray
    verification: Any = None  # verification.Verification of a diffusion method, or None


def _n_test(url: str, max_samples: int | None) -> int:
    n = open_split(url, "test").sizes["sample"]
    return n if max_samples is None else min(n, max_samples)


def _impute_split(
    split: str,
    kinds: list[str],
    denoiser,
    spec: ExperimentSpec,
    plan: SamplerPlan,
    *,
    store_url: str,
    limit: int | None,
    device: str,
) -> tuple[dict[str, dict[str, float]], dict[str, tuple]]:
    """Impute ``split`` (``val`` or ``test``) with each sampler of ``kinds``; metrics per kind
    (keys ``test_*`` as :class:`SquaredError` names them) and the first sample per kind."""
    data = SplitDataset(store_url, split, with_truth=True, limit=limit)
    physics = physics_context(open_split(store_url, split), spec.data.source)
    accs = {k: SquaredError(data.channels) for k in kinds}
    examples: dict[str, tuple] = {}
    # the same masks and noise for every split's first batch would tie val to test: offset them
    g = torch.Generator(device=device).manual_seed(spec.seed + (7 if split == "test" else 11))
    for batch in DataLoader(data, batch_size=spec.evaluation.batch_size):
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        truth_phys = data.denormalise(batch["truth"])
        mask = batch["mask"].numpy()
        mu0 = None
        for kind in kinds:
            imputed, _ = impute(kind, denoiser, x, m, plan, generator=g, mu0=mu0)
            if kind == "single":
                mu0 = imputed  # the multi-step sampler's μ₀ is the single-step estimate
            imputed_phys = data.denormalise(imputed)
            accs[kind].update(imputed_phys, truth_phys, mask, data.std.ravel())
            accs[kind].add(score(imputed_phys, truth_phys, batch["index"].numpy(), physics))
            examples.setdefault(kind, (truth_phys[0], mask[0], imputed_phys[0]))
    return {k: acc.result() for k, acc in accs.items()}, examples


def evaluate_diffusion(
    checkpoint_dir: str | Path,
    spec: ExperimentSpec,
    method: DiffusionMethod,
    *,
    store_url: str,
) -> Evaluation:
    """Impute the validation and test splits with ``method``'s trained checkpoint and score them.

    Every option comes from the typed ``spec`` and ``method`` (the checkpoint brings only the
    weights): ``method.sampler.kind`` is ``single`` (ensemble, Sec. 3.3), ``multi`` (Alg. 4),
    ``direct`` (full mask as context, Table 4) or ``best`` — the paper's rule for diffusion
    baselines (report the better of single and multi), with the choice made on the
    **validation** split (``val_mse_single``, ``val_mse_multi``; ``sampler_used``: 0 single,
    1 multi) and only the chosen sampler run on the test split, so that nothing is tuned on test.

    Returns the test metrics (``test_*``) and the validation metrics of the sampler used
    (``val_mse``, ``val_mse_unobserved``: what settings are chosen by, e.g. the best ratio of
    Table 6). ``spec.evaluation.val_samples`` limits the validation samples (default: all).
    """
    device = "cuda" if spec.ray.use_gpu else "cpu"
    denoiser, _ = load_denoiser(checkpoint_dir, device)
    plan = sampler_plan(spec, method)
    common = dict(store_url=store_url, device=device)
    kind = method.sampler.kind
    kinds = ["single", "multi"] if kind == "best" else [kind]
    val, _ = _impute_split(
        "val", kinds, denoiser, spec, plan, limit=spec.evaluation.val_samples, **common
    )
    chosen = min(kinds, key=lambda k: val[k]["test_mse"])
    limit = _n_test(store_url, spec.evaluation.max_samples)
    test, examples = _impute_split("test", [chosen], denoiser, spec, plan, limit=limit, **common)
    metrics = dict(test[chosen])
    metrics["val_mse"] = val[chosen]["test_mse"]
    metrics["val_mse_unobserved"] = val[chosen]["test_mse_unobserved"]
    if len(kinds) > 1:
        for k in kinds:
            metrics[f"val_mse_{k}"] = val[k]["test_mse"]
        metrics["sampler_used"] = float(kinds.index(chosen))
    # -- ensemble verification, error against K, calibration: verification.py --------------
    verification = None
    if spec.evaluation.verification.enabled:
        from incdyn.platform.experiment.verification import verify_diffusion

        verification = verify_diffusion(
            denoiser, spec, plan, chosen, store_url=store_url, limit=limit, device=device
        )
        metrics.update(verification.metrics)
    return Evaluation(metrics, *examples[chosen], verification=verification)


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
