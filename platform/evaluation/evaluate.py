"""Impute the test split with a trained model or a classical baseline, and score it.

Diffusion methods run the single-step ensemble (Sec. 3.3) batch by batch in the calling
process; classical baselines run as Ray tasks, one per store chunk of test samples. Both feed the
same :class:`~incdyn.datasets.metrics.squared_error.SquaredError` (truth) and
:class:`~incdyn.datasets.metrics.heldout.HeldoutError` (held-out observed points), so every
method is scored by one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from torch.utils.data import DataLoader

from incdyn.datasets.metrics.heldout import HeldoutError
from incdyn.datasets.metrics.scoring import physics_context, score
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.store import (
    broadcast_domain,
    domain_of_samples,
    normalization,
    open_split,
    store_domain,
)
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.baselines.classical import impute_batch
from incdyn.models.samplers.registry import SamplerPlan, impute
from incdyn.platform.checkpoint import load_denoiser
from incdyn.platform.console import evaluation_bar
from incdyn.platform.evaluation.dineof_record_scope import run_dineof_record
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


def _has(url: str, split: str, name: str) -> bool:
    return name in open_split(url, split)


def _outside_to_nan(imputed: np.ndarray, domain: np.ndarray | None) -> np.ndarray:
    """The imputation a user gets: NaN outside the domain (``(N, T, C, H, W)``; the domain
    ``(H, W)`` or each sample's own ``(N, H, W)``)."""
    if domain is not None:
        imputed[~broadcast_domain(domain, imputed.shape)] = np.nan
    return imputed


def _run_kinds(kinds, denoiser, x, m, plan: SamplerPlan, g: torch.Generator) -> dict:
    """Impute one batch with each sampler of ``kinds`` (multi-step reuses single's μ₀)."""
    out, mu0 = {}, None
    for kind in kinds:
        out[kind], _ = impute(kind, denoiser, x, m, plan, generator=g, mu0=mu0)
        if kind == "single":
            mu0 = out[kind]  # the multi-step sampler's μ₀ is the single-step estimate
    return out


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
    (keys ``test_*`` as :class:`SquaredError` and :class:`HeldoutError` name them) and the first
    sample per kind.

    With truth, the imputation from every observed point is scored against it. With held-out
    points, a second pass imputes from ``mask`` without them and is scored on them; it draws
    from its own generator, so the first pass's numbers do not depend on it.
    """
    truth, held = _has(store_url, split, "truth"), _has(store_url, split, "holdout")
    data = SplitDataset(store_url, split, with_truth=truth, with_holdout=held, limit=limit)
    physics = physics_context(open_split(store_url, split), spec.data.source)
    domain = store_domain(open_split(store_url, split))
    accs = {k: SquaredError(data.channels) for k in kinds}
    held_accs = {k: HeldoutError(data.channels) for k in kinds}
    examples: dict[str, tuple] = {}
    # the same masks and noise for every split's first batch would tie val to test: offset them
    g = torch.Generator(device=device).manual_seed(spec.seed + (7 if split == "test" else 11))
    g_held = torch.Generator(device=device).manual_seed(spec.seed + (19 if split == "test" else 23))
    bar = evaluation_bar(len(data), f"impute {split}")
    for batch in DataLoader(data, batch_size=spec.evaluation.batch_size):
        bar.update(len(batch["index"]))
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        mask = batch["mask"].numpy()
        inside = domain_of_samples(domain, batch["index"].numpy())  # this batch's samples
        observed = np.where(mask[:, :, None], data.denormalise(batch["x_obs"]), np.nan)
        reference = data.denormalise(batch["truth"]) if truth else observed
        for kind, imputed in _run_kinds(kinds, denoiser, x, m, plan, g).items():
            imputed_phys = _outside_to_nan(data.denormalise(imputed), inside)
            if truth:
                accs[kind].update(imputed_phys, reference, mask, data.std.ravel(), inside)
                accs[kind].add(score(imputed_phys, reference, batch["index"].numpy(), physics))
            examples.setdefault(kind, (reference[0], mask[0], imputed_phys[0]))
        if held:
            h = batch["holdout"].to(device)
            m_in = m & ~h
            x_in = x * m_in[:, None]
            for kind, imputed in _run_kinds(kinds, denoiser, x_in, m_in, plan, g_held).items():
                held_accs[kind].update(
                    data.denormalise(imputed), observed, batch["holdout"].numpy(), data.std.ravel()
                )
    bar.close()
    metrics = {
        k: {**(accs[k].result() if truth else {}), **(held_accs[k].result() if held else {})}
        for k in kinds
    }
    return metrics, examples


def impute_validation(
    denoiser,
    spec: ExperimentSpec,
    method: DiffusionMethod,
    *,
    store_url: str,
    limit: int | None,
    device: str,
) -> dict[str, float]:
    """The first ``limit`` validation samples imputed with ``method``'s single-step ensemble:
    ``test_*`` metrics as :func:`_impute_split` names them (truth and/or held-out points)."""
    val, _ = _impute_split(
        "val",
        ["single"],
        denoiser,
        spec,
        sampler_plan(spec, method),
        store_url=store_url,
        limit=limit,
        device=device,
    )
    return val["single"]


def _criterion_key(spec: ExperimentSpec, val: dict[str, dict[str, float]]) -> str:
    """The key of ``val``'s metrics that chooses (``test_*`` names, as the splits' metrics have)."""
    criterion = spec.evaluation.criterion
    key = "test_mse" if criterion == "val_mse" else "test_heldout_mse"
    if any(key not in m for m in val.values()):
        raise ValueError(
            f"choosing on {criterion} needs it on the validation split, which has "
            f"{sorted(next(iter(val.values())))}: set evaluation.holdout or evaluation.select_on"
        )
    return key


def _val_metrics(val: dict[str, dict[str, float]], chosen: str, kinds: list[str]) -> dict:
    """The validation metrics logged beside the test ones: ``val_mse``, ``val_mse_unobserved``
    and ``val_heldout_mse`` of the chosen sampler, and per sampler when there are several."""
    names = ("test_mse", "test_mse_unobserved", "test_heldout_mse")
    out = {"val" + n[4:]: val[chosen][n] for n in names if n in val[chosen]}
    if len(kinds) > 1:
        for k in kinds:
            for n in ("test_mse", "test_heldout_mse"):
                if n in val[k]:
                    out[f"val{n[4:]}_{k}"] = val[k][n]
        out["sampler_used"] = float(kinds.index(chosen))
    return out


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
    **validation** split by ``spec.evaluation.criterion`` (``val_heldout_mse`` when the store
    has held-out points, unless the spec asks for the truth's ``val_mse``; per sampler
    ``val_mse_single``, ``val_heldout_mse_multi``, ...; ``sampler_used``: 0 single, 1 multi) and
    only the chosen sampler run on the test split, so that nothing is tuned on test.

    Returns the test metrics (``test_*``, ``test_heldout_mse`` with held-out points) and the
    validation metrics of the sampler used (``val_mse``, ``val_mse_unobserved``,
    ``val_heldout_mse``: what settings are chosen by, e.g. the best ratio of Table 6).
    ``spec.evaluation.val_samples`` limits the validation samples (default: all).
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
    key = _criterion_key(spec, val)
    chosen = min(kinds, key=lambda k: val[k][key])
    limit = _n_test(store_url, spec.evaluation.max_samples)
    test, examples = _impute_split("test", [chosen], denoiser, spec, plan, limit=limit, **common)
    metrics = {**test[chosen], **_val_metrics(val, chosen, kinds)}
    # -- ensemble verification, error against K, calibration: verification.py --------------
    verification = None
    if spec.evaluation.verification.enabled:
        from incdyn.platform.evaluation.verification import verify_diffusion

        verification = verify_diffusion(
            denoiser, spec, plan, chosen, store_url=store_url, limit=limit, device=device
        )
        metrics.update(verification.metrics)
    return Evaluation(metrics, *examples[chosen], verification=verification)


def _classical_shard(
    name: str, url: str, split: str, start: int, stop: int, source: str
) -> tuple[SquaredError | None, HeldoutError | None, tuple]:
    """Baseline ``name`` on samples ``start:stop`` of ``split``: the truth's accumulator (None
    without truth), the held-out pass's (None without held-out points) and the first sample."""
    data = open_split(url, split)
    physics = physics_context(data, source)
    ds = data.isel(sample=slice(start, stop))
    values, mask = ds["field"].values.astype(np.float32), ds["mask"].values.astype(bool)
    channels = tuple(str(c) for c in ds["channel"].values)
    _, std = normalization(url)
    domain = store_domain(ds)  # a per-sample domain is sliced with the samples
    imputed = _outside_to_nan(impute_batch(name, values, mask), domain)
    acc = held = None
    reference = values
    if "truth" in ds:
        reference = ds["truth"].values
        acc = SquaredError(channels)
        acc.update(imputed, reference, mask, std, domain)
        acc.add(score(imputed, reference, np.arange(start, stop), physics))
    if "holdout" in ds:
        holdout = ds["holdout"].values.astype(bool)
        m_in = mask & ~holdout
        hidden = np.where(m_in[:, :, None], values, np.nan).astype(np.float32)
        held = HeldoutError(channels)
        held.update(impute_batch(name, hidden, m_in), values, holdout, std)
    return acc, held, (reference[0], mask[0], imputed[0])


_classical_task = ray.remote(num_cpus=1)(_classical_shard)


def _classical_split(kind: str, url: str, split: str, n: int, source: str) -> tuple[dict, tuple]:
    chunk = open_split(url, split)["field"].encoding.get("chunks", (n,))[0]
    ranges = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    if url.startswith("memory://") or not ray.is_initialized():
        parts = [_classical_shard(kind, url, split, a, b, source) for a, b in ranges]
    else:
        parts = ray.get([_classical_task.remote(kind, url, split, a, b, source) for a, b in ranges])
    metrics = {}
    for i in (0, 1):
        acc = parts[0][i]
        if acc is not None:
            for other in parts[1:]:
                acc.merge(other[i])
            metrics.update(acc.result())
    return metrics, parts[0][2]


def evaluate_classical(
    kind: str,
    *,
    store_url: str,
    max_samples: int | None,
    source: str,
    scope: str = "window",
    options: dict | None = None,
) -> Evaluation:
    """Classical baseline over the test split, one Ray task per store chunk.

    With held-out points the validation split is imputed too (``val_heldout_mse``, and
    ``val_mse`` where there is truth), so that baselines are compared on the same footing.
    ``scope: record`` (DINEOF only) reconstructs each tile's whole record in one Ray task
    (:mod:`~incdyn.platform.evaluation.dineof_record_scope`), scored the same way; ``options``
    (``max_modes``, ``tol``; ``None`` values ignored) bound its DINEOF.
    """
    if scope == "record":
        if kind != "dineof":
            raise ValueError(f"scope: record is for kind: dineof only, not {kind!r}")
        splits = run_dineof_record(
            store_url, max_samples=max_samples, source=source, **(options or {})
        )
        metrics, example = splits["test"]
        if _has(store_url, "val", "holdout"):
            metrics = {**metrics, **_val_metrics({kind: splits["val"][0]}, kind, [kind])}
        return Evaluation(metrics, *example)
    n = _n_test(store_url, max_samples)
    metrics, example = _classical_split(kind, store_url, "test", n, source)
    if _has(store_url, "val", "holdout"):
        n_val = open_split(store_url, "val").sizes["sample"]
        val, _ = _classical_split(kind, store_url, "val", n_val, source)
        metrics.update(_val_metrics({kind: val}, kind, [kind]))
    return Evaluation(metrics, *example)
