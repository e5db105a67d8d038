"""``incdyn run SPEC``: data, every method, scores and MLflow records, end to end.

1. validate the spec (done by the caller) and connect to Ray;
2. generate the store as Ray tasks, or reuse it;
3. open a parent MLflow run for the experiment; per method a child run with the resolved spec
   as params: diffusion methods train through Ray Train (curves logged live) and impute the
   test split with the ensemble; classical baselines impute as Ray tasks;
4. log the test metrics, the imputation figure and the checkpoint (diffusion methods also as a
   registered MLflow model); on the parent, the results table and the methods' comparison;
5. print the results table (``incdyn ui SPEC`` then opens the comparison in the MLflow UI).
"""

from __future__ import annotations

import time

import mlflow
import torch
from mlflow.tracking import MlflowClient

from incdyn.datasets.build import build_store, store_config
from incdyn.platform.calibration import save_calibration
from incdyn.platform.console import configure, training_bar
from incdyn.platform.experiment.audit import check_exposure
from incdyn.platform.experiment.evaluate import (
    Evaluation,
    evaluate_classical,
    evaluate_diffusion,
)
from incdyn.platform.experiment.verification import log_verification
from incdyn.platform.job_paths import check_job_paths, resolve_local
from incdyn.platform.ray_session import init_ray
from incdyn.platform.registry.publish import model_tags, publish_model
from incdyn.platform.report.comparison import log_parent_comparison
from incdyn.platform.report.figures import imputation_figure
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, dump_spec
from incdyn.platform.timings import Timings
from incdyn.platform.tracking import (
    ROLE_EXPERIMENT,
    ROLE_METHOD,
    TAG_TRAIN_RUN,
    log_evaluation,
    log_metrics,
    resolve_tracking_uri,
    run_scope,
    start_child,
    start_parent,
)
from incdyn.platform.train.driver import run_name, train_method, training_phases
from incdyn.platform.ui.view import mark_experiment


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
        family=d.observation,
        seed=spec.seed,
        test_family=d.test_observation,
        holdout=spec.evaluation.holdout,
        train_truth=any(
            isinstance(m, DiffusionMethod) and m.training_data == "complete" for m in spec.methods
        ),
    )
    url = store_url_of(spec)
    status = build_store(url, config, progress=progress)
    if progress and status == "reused":
        print(f"store {url}: reusing the finished data set")
    return url


def _train(
    spec: ExperimentSpec, method, url: str, client: MlflowClient, run_id: str, progress: bool,
    timings: Timings,
):  # fmt: skip
    """Ray Train fit of ``method``; its phases (the worker's and Ray's overhead) into ``timings``."""
    client.set_tag(run_id, TAG_TRAIN_RUN, run_name(spec, method))
    tracking_uri = client.tracking_uri
    bar = f"train {method.name} (seed {spec.seed})"
    started_at, t0 = time.time(), time.perf_counter()
    with training_bar(tracking_uri, run_id if progress else None, spec.training.steps, bar):
        result = train_method(spec, method, store_url=url, tracking_uri=tracking_uri, run_id=run_id)
    seconds = time.perf_counter() - t0
    for phase, s in training_phases(result, started_at=started_at, seconds=seconds).items():
        timings.add(phase, s)
    if result.checkpoint is None:
        raise RuntimeError(f"method {method.name!r}: training left no checkpoint ({result.error})")
    return result


def _run_method(
    spec: ExperimentSpec, method, url: str, client: MlflowClient, run_id: str, progress: bool,
    timings: Timings,
) -> Evaluation:  # fmt: skip
    if not isinstance(method, DiffusionMethod):
        with timings.phase("evaluation"):
            return evaluate_classical(
                method.kind,
                store_url=url,
                max_samples=spec.evaluation.max_samples,
                source=spec.data.source,
            )
    result = _train(spec, method, url, client, run_id, progress, timings)
    if spec.ray.cpus_per_worker and not spec.ray.use_gpu:
        # impute with the CPUs of one worker: other runs may be training beside this driver
        torch.set_num_threads(max(1, int(spec.ray.cpus_per_worker)))
    with result.checkpoint.as_directory() as ckpt:
        with timings.phase("evaluation"):
            ev = evaluate_diffusion(ckpt, spec, method, store_url=url)
            if ev.verification is not None and ev.verification.calibration is not None:
                # beside the weights before they are logged and registered: the checkpoint
                # artifact, the registered model and `incdyn serve CKPT_DIR` all carry it
                save_calibration(ckpt, ev.verification.calibration)
        with timings.phase("checkpoint_artifacts"):
            client.log_artifacts(run_id, ckpt, artifact_path="checkpoint")
        with timings.phase("model_registration"):
            name, version = publish_model(
                client,
                run_id,
                ckpt,
                experiment=spec.experiment_name,
                method=method.name,
                tags=model_tags(spec, method),
            )
        print(f"{method.name}: registered as MLflow model models:/{name}/{version}")
        return ev


def format_table(rows: list[dict]) -> str:
    keys = ["setting", "method", "kind", "seed", "test_mse", "test_mse_unobserved", "seconds"]
    if any("test_heldout_mse" in r for r in rows):  # the only score of data without truth
        keys.insert(-1, "test_heldout_mse")
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = [f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _record_method(
    spec: ExperimentSpec,
    method,
    url: str,
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    progress: bool = True,
) -> dict:
    """One child run: train (diffusion) or run (baseline), impute, score and log.

    The run's wall time is logged last, per phase (``time_<phase>_s``, see
    :mod:`incdyn.platform.timings`): MLflow run start, the training's phases, checkpoint
    artifacts, model registration, evaluation, figure, result logging."""
    timings = Timings()
    name = f"{method.name}/{spec.setting.replace(' ', '/')}/seed{spec.seed}"
    with timings.phase("mlflow_start"):
        run_id = start_child(
            client, experiment_id, parent_id, spec, method, role=ROLE_METHOD, run_name=name
        )
    with run_scope(client, run_id):
        ev = _run_method(spec, method, url, client, run_id, progress, timings)
        seconds = timings.elapsed()
        figure = None
        title = f"{spec.name}: {method.name} ({spec.setting}, seed {spec.seed})"
        if spec.evaluation.figure:
            with timings.phase("figure"):
                figure = imputation_figure(
                    ev.example_truth, ev.example_mask, ev.example_imputed, title=title
                )
        example = (ev.example_truth, ev.example_mask, ev.example_imputed)
        with timings.phase("result_logging"):
            log_evaluation(
                client, run_id, {**ev.metrics, "seconds": seconds}, figure=figure, example=example
            )
            if ev.verification is not None:
                log_verification(client, run_id, ev.verification, title=title)
        log_metrics(client, run_id, timings.metrics())
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
    experiment = mlflow.set_experiment(spec.experiment_name)
    client = MlflowClient(tracking_uri)
    mark_experiment(client, experiment.experiment_id)  # model training; the comparison view
    configure(verbose)
    t0 = time.perf_counter()
    init_ray(spec.ray.address, verbose=verbose)
    ray_start = time.perf_counter() - t0
    rows = []
    for variant in variants:
        rows += _run_variant(
            variant, client, experiment.experiment_id, progress=progress, ray_start=ray_start
        )
    mark_experiment(client, experiment.experiment_id)  # columns for every test metric logged
    table = format_table(rows)
    print(f"\nexperiment {spec.name} (MLflow experiment {spec.experiment_name!r})")
    print(table)
    print(f"MLflow: {tracking_uri} (experiment {spec.experiment_name!r})")
    return rows


def _run_variant(
    spec: ExperimentSpec,
    client: MlflowClient,
    experiment_id: str,
    *,
    progress: bool,
    ray_start: float = 0.0,
) -> list[dict]:
    """One data setting: build/reuse its store (one per seed with ``data.per_seed``), a parent
    run, a child run per method × seed.

    The parent run gets this setting's wall time per phase (data, MLflow, the method runs,
    results) and ``time_ray_start_s``, the experiment's connection to Ray (outside the total).
    """
    timings = Timings()
    with timings.phase("data"):
        url = None if spec.data.per_seed else ensure_data(spec, progress=progress)
    rows = []
    with timings.phase("mlflow_start"):
        parent_id = start_parent(
            client,
            experiment_id,
            spec,
            role=ROLE_EXPERIMENT,
            run_name=f"{spec.name} ({spec.setting})",
        )
    with run_scope(client, parent_id):
        for seed in spec.run_seeds:
            seeded = spec.model_copy(update={"seed": seed})
            with timings.phase("data"):
                seed_url = url or ensure_data(seeded, progress=progress)  # per_seed: its own
            with timings.phase("methods"):
                for method in spec.methods:
                    rows.append(
                        _record_method(
                            seeded, method, seed_url, client, experiment_id, parent_id, progress
                        )
                    )
        with timings.phase("result_logging"):
            client.log_text(parent_id, format_table(rows), "results.md")
            if spec.evaluation.figure:
                log_parent_comparison(client, parent_id, title=f"{spec.name} ({spec.setting})")
        log_metrics(client, parent_id, {**timings.metrics(), "time_ray_start_s": ray_start})
    return [{"setting": spec.setting, **r} for r in rows]


def dry_run(spec: ExperimentSpec) -> str:
    """The resolved spec as YAML, plus where things will go — nothing is started."""
    lines = [
        dump_spec(spec).rstrip(),
        "# resolved:",
        f"#   mlflow: {resolve_tracking_uri(spec.mlflow.tracking_uri)} (experiment {spec.experiment_name!r})",
    ]
    for variant in spec.variants():
        where = "one store per seed" if variant.data.per_seed else f"store {store_url_of(variant)}"
        lines.append(f"#   setting {variant.setting!r}: {where}")
        for seed in variant.run_seeds:
            seeded = variant.model_copy(update={"seed": seed})
            if variant.data.per_seed:
                lines.append(f"#     data of seed {seed}: store {store_url_of(seeded)}")
            for m in variant.methods:
                if isinstance(m, DiffusionMethod):
                    lines.append(
                        f"#     ray train run for {m.name} (seed {seed}): {run_name(seeded, m)}"
                    )
    return "\n".join(lines)
