"""``incdyn run SPEC``: data, every method, scores and MLflow records, end to end.

1. validate the spec (done by the caller) and connect to Ray;
2. generate the store as Ray tasks, or reuse it;
3. open a parent MLflow run for the experiment; per method a child run with the resolved spec
   as params: diffusion methods train through Ray Train (curves logged live) and impute the
   test split with the ensemble; classical baselines impute as Ray tasks;
4. log the test metrics, the comparison figure and the checkpoint; print the results table.
"""

from __future__ import annotations

import time

import mlflow
import torch

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.masks import MaskFamily
from incdyn.platform.console import configure, training_bar
from incdyn.platform.experiment.audit import check_exposure
from incdyn.platform.experiment.evaluate import (
    Evaluation,
    diffusion_options,
    evaluate_classical,
    evaluate_diffusion,
)
from incdyn.platform.job_paths import check_job_paths, resolve_local
from incdyn.platform.ray_session import init_ray
from incdyn.platform.report.figures import imputation_figure
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, dump_spec
from incdyn.platform.tracking import flatten, log_params, resolve_tracking_uri
from incdyn.platform.train.driver import run_name, train_method


def store_url_of(spec: ExperimentSpec) -> str:
    return resolve_local(spec.store_url)


def ensure_data(spec: ExperimentSpec, *, progress: bool = True) -> str:
    """Generate (Ray tasks) or reuse the spec's store; returns its absolute URL."""
    d = spec.data
    config = store_config(
        source=d.source,
        preset=d.preset,
        params=dict(d.params),
        sizes={"train": d.n_train, "val": d.n_val, "test": d.n_test},
        chunk=d.chunk,
        family=MaskFamily(**d.observation.model_dump()),
        seed=spec.seed,
        test_family=MaskFamily(**d.test_observation.model_dump()) if d.test_observation else None,
    )
    url = store_url_of(spec)
    status = build_store(url, config, progress=progress)
    if progress and status == "reused":
        print(f"store {url}: reusing the finished data set")
    return url


def _run_method(
    spec: ExperimentSpec, method, url: str, tracking_uri: str, run_id: str, progress: bool = True
) -> Evaluation:
    if not isinstance(method, DiffusionMethod):
        return evaluate_classical(
            method.kind,
            store_url=url,
            max_samples=spec.evaluation.max_samples,
            source=spec.data.source,
        )
    mlflow.set_tag("ray_train_run", run_name(spec, method))
    bar = f"train {method.name} (seed {spec.seed})"
    with training_bar(tracking_uri, run_id if progress else None, spec.training.steps, bar):
        result = train_method(spec, method, store_url=url, tracking_uri=tracking_uri, run_id=run_id)
    if result.checkpoint is None:
        raise RuntimeError(f"method {method.name!r}: training left no checkpoint ({result.error})")
    if spec.ray.cpus_per_worker and not spec.ray.use_gpu:
        # impute with the CPUs of one worker: other runs may be training beside this driver
        torch.set_num_threads(max(1, int(spec.ray.cpus_per_worker)))
    with result.checkpoint.as_directory() as ckpt:
        mlflow.log_artifacts(ckpt, artifact_path="checkpoint")
        return evaluate_diffusion(ckpt, store_url=url, **diffusion_options(spec, method))


def format_table(rows: list[dict]) -> str:
    keys = ["setting", "method", "kind", "seed", "test_mse", "test_mse_unobserved", "seconds"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = [f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _record_method(
    spec: ExperimentSpec,
    method,
    url: str,
    tracking_uri: str,
    params: dict,
    parent_id: str,
    progress: bool = True,
) -> dict:
    """One child run: train (diffusion) or run (baseline), impute, score and log."""
    t0 = time.perf_counter()
    name = f"{method.name}/{spec.setting.replace(' ', '/')}/seed{spec.seed}"
    with mlflow.start_run(run_name=name, nested=True) as child:
        mlflow.set_tags(
            {
                "incdyn.role": "method",
                "incdyn.method": method.name,
                "incdyn.kind": method.kind,
                "incdyn.setting": spec.setting,
                "incdyn.seed": str(spec.seed),
                "mlflow.parentRunId": parent_id,
            }
        )
        method_params = {
            f"method.{k}": v for k, v in flatten(method.model_dump(mode="json")).items()
        }
        log_params({**params, "seed": str(spec.seed), **method_params})
        ev = _run_method(spec, method, url, tracking_uri, child.info.run_id, progress)
        seconds = time.perf_counter() - t0
        mlflow.log_metrics({**ev.metrics, "seconds": seconds})
        if spec.evaluation.figure:
            title = f"{spec.name}: {method.name} ({spec.setting}, seed {spec.seed})"
            fig = imputation_figure(
                ev.example_truth, ev.example_mask, ev.example_imputed, title=title
            )
            mlflow.log_figure(fig, "figures/test_sample0.png")
    return {
        "method": method.name,
        "kind": method.kind,
        "seed": spec.seed,
        **ev.metrics,
        "seconds": seconds,
    }


def run_experiment(
    spec: ExperimentSpec, *, progress: bool = True, verbose: bool = True
) -> list[dict]:
    """Run every method of ``spec`` for every data setting and seed; one row per run.

    The exposure audit runs first (before any data or Ray): a partition strategy that leaves
    never-queried dimensions is refused unless the method allows it. ``verbose=False`` keeps
    Ray's own logs out of the console (progress bars and the table only).
    """
    check_job_paths(spec)  # in a Ray job: nothing written where the job's folder loses it
    variants = spec.variants()
    for variant in variants:
        check_exposure(variant)
    tracking_uri = resolve_tracking_uri(spec.mlflow.tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(spec.experiment_name)
    configure(verbose)
    init_ray(spec.ray.address, verbose=verbose)
    rows = []
    for variant in variants:
        rows += _run_variant(variant, tracking_uri, progress=progress)
    table = format_table(rows)
    print(f"\nexperiment {spec.name} (MLflow experiment {spec.experiment_name!r})")
    print(table)
    print(f"MLflow: {tracking_uri} (experiment {spec.experiment_name!r})")
    return rows


def _run_variant(spec: ExperimentSpec, tracking_uri: str, *, progress: bool) -> list[dict]:
    """One data setting: build/reuse its store, a parent run, a child run per method × seed."""
    url = ensure_data(spec, progress=progress)
    params = flatten(
        {
            k: v
            for k, v in spec.to_dict().items()
            if k not in ("methods", "seeds", "seed", "profiles", "settings")
        }
    )
    rows = []
    with mlflow.start_run(run_name=f"{spec.name} ({spec.setting})") as parent:
        mlflow.set_tags(
            {
                "incdyn.role": "experiment",
                "incdyn.spec_name": spec.name,
                "incdyn.setting": spec.setting,
            }
        )
        log_params({**params, "seeds": str(spec.run_seeds)})
        mlflow.log_text(dump_spec(spec), "spec.yaml")
        for seed in spec.run_seeds:
            seeded = spec.model_copy(update={"seed": seed})
            for method in spec.methods:
                rows.append(
                    _record_method(
                        seeded, method, url, tracking_uri, params, parent.info.run_id, progress
                    )
                )
        mlflow.log_text(format_table(rows), "results.md")
    return [{"setting": spec.setting, **r} for r in rows]


def dry_run(spec: ExperimentSpec) -> str:
    """The resolved spec as YAML, plus where things will go — nothing is started."""
    lines = [
        dump_spec(spec).rstrip(),
        "# resolved:",
        f"#   mlflow: {resolve_tracking_uri(spec.mlflow.tracking_uri)} (experiment {spec.experiment_name!r})",
    ]
    for variant in spec.variants():
        lines.append(f"#   setting {variant.setting!r}: store {store_url_of(variant)}")
        for seed in variant.run_seeds:
            seeded = variant.model_copy(update={"seed": seed})
            for m in variant.methods:
                if isinstance(m, DiffusionMethod):
                    lines.append(
                        f"#     ray train run for {m.name} (seed {seed}): {run_name(seeded, m)}"
                    )
    return "\n".join(lines)
