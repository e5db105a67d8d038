"""``incdyn run SPEC``: data, every method, scores and MLflow records, end to end.

1. validate the spec (done by the caller) and connect to Ray;
2. generate the store as Ray tasks, or reuse it;
3. open a parent MLflow run for the experiment; per method a child run with the resolved spec
   as params: diffusion methods train through Ray Train (curves logged live) and impute the
   test split with the ensemble; DINCAE-style baselines train through Ray Train too (a fit
   each, after the diffusion methods) and impute with their mean and variance; classical
   baselines impute as Ray tasks;
4. log the test metrics, the imputation figure and the checkpoint (diffusion methods also as a
   registered MLflow model); on the parent, the results table and the methods' comparison;
5. print the results table (``incdyn ui SPEC`` then opens the comparison in the MLflow UI).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlflow
import torch
from mlflow.tracking import MlflowClient

from incdyn.platform import kill_points
from incdyn.platform.console import configure, resume_line, training_bar
from incdyn.platform.data_prep import check_data, ensure_data, store_url_of
from incdyn.platform.evaluation.audit import check_exposure
from incdyn.platform.evaluation.calibration import save_calibration
from incdyn.platform.evaluation.dincae_eval import evaluate_dincae
from incdyn.platform.evaluation.evaluate import (
    Evaluation,
    evaluate_classical,
    evaluate_diffusion,
)
from incdyn.platform.evaluation.verification import log_verification
from incdyn.platform.ghosts import reap_ghosts
from incdyn.platform.job_paths import check_job_paths
from incdyn.platform.ray_session import init_ray
from incdyn.platform.registry.publish import model_tags, publish_model
from incdyn.platform.report.comparison import log_parent_comparison
from incdyn.platform.report.figures import imputation_figure
from incdyn.platform.report.rank_agreement import agreement_metrics
from incdyn.platform.spec import (
    DiffusionMethod,
    DincaeMethod,
    ExperimentSpec,
    dump_spec,
    variants_of,
)
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
from incdyn.platform.train.dincae_fit import dincae_run_name, train_dincae
from incdyn.platform.train.driver import run_name
from incdyn.platform.train.group import Trained, TrainingJob, find_stored, train_jobs
from incdyn.platform.ui.view import mark_experiment


@dataclass
class _MethodRun:
    """A method of one seeded spec, its MLflow child run and the run's wall time by phase."""

    spec: ExperimentSpec
    method: Any
    url: str
    run_id: str
    timings: Timings


def _train_all(runs: list[_MethodRun], client: MlflowClient, progress: bool) -> dict[str, Trained]:
    """Ray Train fits of the diffusion methods of ``runs``, one worker group for all of them
    (``ray.shared_worker_group``); each run's phases get its own share of the training time."""
    diffusion = [r for r in runs if isinstance(r.method, DiffusionMethod)]
    if not diffusion:
        return {}
    t0 = time.perf_counter()
    others = [r for r in runs if not isinstance(r.method, DiffusionMethod)]
    jobs = [TrainingJob(r.spec, r.method, r.url, r.run_id) for r in diffusion]
    for r, job in zip(diffusion, jobs, strict=True):
        client.set_tag(r.run_id, TAG_TRAIN_RUN, job.name)
    first: dict[str, TrainingJob] = {}  # per training, the run that logs its curves
    for job in jobs:
        first.setdefault(job.name, job)
    found = find_stored(jobs)
    start = {n: min(found.get(n, (0, None))[0], j.spec.training.steps) for n, j in first.items()}
    if found:  # a rerun: what it found of each training
        for name, job in first.items():
            label = f"training {job.method.name} (seed {job.spec.seed})"
            print(resume_line(label, start[name], job.spec.training.steps))
    steps = sum(job.spec.training.steps - start[name] for name, job in first.items())
    methods = ", ".join(dict.fromkeys(r.method.name for r in diffusion))
    seeds = list(dict.fromkeys(str(job.spec.seed) for job in jobs))
    desc = f"train {methods} (seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})"
    left = {n: j for n, j in first.items() if start[n] < j.spec.training.steps}
    run_ids = [job.run_id for job in left.values()] if progress else []
    started = {job.run_id: start[name] for name, job in left.items()}
    with training_bar(client.tracking_uri, run_ids, steps, desc, started):
        trained = train_jobs(
            jobs,
            tracking_uri=client.tracking_uri,
            shared=diffusion[0].spec.ray.shared_worker_group,
            found=found,
        )
    seconds = time.perf_counter() - t0
    for r, job in zip(diffusion, jobs, strict=True):
        own = trained[job.name].phases if first[job.name] is job else {}  # shared: trained once
        for phase, s in own.items():
            r.timings.add(phase, s)
        r.timings.exclude(seconds - sum(own.values()))  # the other trainings' time
    for r in others:
        r.timings.exclude(seconds)
    return trained


def _train_dincae(runs: list[_MethodRun], client: MlflowClient) -> dict[str, Trained]:
    """A Ray Train fit per DINCAE-style baseline of ``runs`` (curves to its own MLflow run);
    a training's time is its run's ``training`` phase and left out of the other runs'."""
    trained: dict[str, Trained] = {}
    for r in runs:
        if not isinstance(r.method, DincaeMethod):
            continue
        name = dincae_run_name(r.spec, r.method)
        client.set_tag(r.run_id, TAG_TRAIN_RUN, name)
        print(f"train {r.method.name} (seed {r.spec.seed})")
        checkpoint, seconds = train_dincae(
            r.spec, r.method, store_url=r.url, tracking_uri=client.tracking_uri, run_id=r.run_id
        )
        trained[name] = Trained(checkpoint, {"training": seconds})
        r.timings.add("training", seconds)
        for other in runs:
            if other is not r:
                other.timings.exclude(seconds)
    return trained


def _weights_key(r: _MethodRun) -> str | None:
    """The key of ``r``'s trained weights (None: a classical method has none)."""
    if isinstance(r.method, DiffusionMethod):
        return run_name(r.spec, r.method)
    if isinstance(r.method, DincaeMethod):
        return dincae_run_name(r.spec, r.method)
    return None


def _evaluate_dincae(r: _MethodRun, trained: Trained, client: MlflowClient) -> Evaluation:
    """Impute and score a DINCAE-style baseline; its checkpoint (with its calibration) is logged
    as the run's ``checkpoint`` artifact."""
    with trained.checkpoint.as_directory() as ckpt:
        with r.timings.phase("evaluation"):
            ev = evaluate_dincae(ckpt, r.spec, store_url=r.url)
            if ev.verification.calibration is not None:
                save_calibration(ckpt, ev.verification.calibration)
        with r.timings.phase("checkpoint_artifacts"):
            client.log_artifacts(r.run_id, ckpt, artifact_path="checkpoint")
    return ev


def _evaluate(r: _MethodRun, trained: Trained | None, client: MlflowClient) -> Evaluation:
    """Impute and score; a diffusion method's checkpoint is logged and registered too."""
    spec, method, timings = r.spec, r.method, r.timings
    if isinstance(method, DincaeMethod):
        return _evaluate_dincae(r, trained, client)
    if not isinstance(method, DiffusionMethod):
        with timings.phase("evaluation"):
            return evaluate_classical(
                method.kind,
                store_url=r.url,
                max_samples=spec.evaluation.max_samples,
                source=spec.data.source,
                scope=method.scope,
                options={"max_modes": method.max_modes, "tol": method.tol},
            )
    if spec.ray.cpus_per_worker and not spec.ray.use_gpu:
        # impute with the CPUs of one worker: other runs may be training beside this driver
        torch.set_num_threads(max(1, int(spec.ray.cpus_per_worker)))
    with trained.checkpoint.as_directory() as ckpt:
        with timings.phase("evaluation"):
            ev = evaluate_diffusion(ckpt, spec, method, store_url=r.url)
            kill_points.reached("evaluation")
            if ev.verification is not None and ev.verification.calibration is not None:
                # beside the weights before they are logged and registered: the checkpoint
                # artifact, the registered model and `incdyn serve CKPT_DIR` all carry it
                save_calibration(ckpt, ev.verification.calibration)
        with timings.phase("checkpoint_artifacts"):
            client.log_artifacts(r.run_id, ckpt, artifact_path="checkpoint")
        with timings.phase("model_registration"):
            name, version = publish_model(
                client,
                r.run_id,
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


def _start_method(
    spec: ExperimentSpec, method, url: str, client: MlflowClient, experiment_id: str,
    parent_id: str,
) -> _MethodRun:  # fmt: skip
    timings = Timings()
    name = f"{method.name}/{spec.setting.replace(' ', '/')}/seed{spec.seed}"
    with timings.phase("mlflow_start"):
        run_id = start_child(
            client, experiment_id, parent_id, spec, method, role=ROLE_METHOD, run_name=name
        )
    return _MethodRun(spec, method, url, run_id, timings)


def _record_method(r: _MethodRun, trained: Trained | None, client: MlflowClient) -> dict:
    """One child run: impute, score and log (the training is done).

    The run's wall time is logged last, per phase (``time_<phase>_s``, see
    :mod:`incdyn.platform.timings`): MLflow run start, the training's phases, checkpoint
    artifacts, model registration, evaluation, figure, result logging."""
    spec, method, timings, run_id = r.spec, r.method, r.timings, r.run_id
    ev = _evaluate(r, trained, client)
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
            kill_points.reached("verification")
            log_verification(client, run_id, ev.verification, title=title)
    log_metrics(client, run_id, timings.metrics())
    return {
        "method": method.name,
        "kind": method.kind,
        "seed": spec.seed,
        **ev.metrics,
        "seconds": seconds,
    }


@contextmanager
def _others_wait(runs: list[_MethodRun], active: _MethodRun | None) -> Iterator[None]:
    """The block's time is ``active``'s alone: the other runs' clocks leave it out, so that
    the runs' totals add up to no more than the wall time of them all."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - t0
        for r in runs:
            if r is not active:
                r.timings.exclude(seconds)


def _run_methods(runs: list[_MethodRun], client: MlflowClient, progress: bool) -> list[dict]:
    """Train the diffusion methods of ``runs`` (:func:`_train_all`) and the DINCAE-style
    baselines (:func:`_train_dincae`), then score every run in order; a run not reached because
    an earlier one failed is marked KILLED."""
    done = 0
    try:
        trained = _train_all(runs, client, progress)
        trained.update(_train_dincae(runs, client))
        rows = []
        for r in runs:
            with run_scope(client, r.run_id), _others_wait(runs, r):
                done += 1
                key = _weights_key(r)
                weights = trained[key] if key is not None else None
                rows.append(_record_method(r, weights, client))
        return rows
    except BaseException:
        for r in runs[done:]:
            client.set_terminated(r.run_id, "FAILED" if done == 0 else "KILLED")
        raise


def run_experiment(
    spec: ExperimentSpec, *, progress: bool = True, verbose: bool = True
) -> list[dict]:
    """Run every method of ``spec`` for every data setting and seed; one row per run.

    The exposure audit runs first (before any data or Ray): a partition strategy that leaves
    never-queried dimensions is refused unless the method allows it. ``verbose=False`` keeps
    Ray's own logs out of the console (progress bars and the table only).
    """
    check_job_paths(spec)  # in a Ray job: nothing written where the job's folder loses it
    variants = variants_of(spec)
    for variant in variants:
        check_exposure(variant)
        check_data(variant)  # the data the user named, before Ray starts
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
    run, a child run per method × seed; the diffusion methods of every seed train first (in one
    worker group: ``ray.shared_worker_group``), then every run is scored.

    The parent run gets this setting's wall time per phase (data, MLflow, the method runs,
    results) and ``time_ray_start_s``, the experiment's connection to Ray (outside the total);
    with truth and held-out points, ``spearman_heldout_truth`` (and ``spearman_val_heldout_truth``):
    the rank agreement of the methods' held-out and truth scores, oracles left out
    (:mod:`incdyn.platform.report.rank_agreement`).
    """
    timings = Timings()
    with timings.phase("data"):
        url = None if spec.data.per_seed else ensure_data(spec, progress=progress)
    with timings.phase("mlflow_start"):
        parent_id = start_parent(
            client,
            experiment_id,
            spec,
            role=ROLE_EXPERIMENT,
            run_name=f"{spec.name} ({spec.setting})",
        )
        reap_ghosts(
            client, experiment_id, spec_name=spec.name, setting=spec.setting,
            role=ROLE_EXPERIMENT, replaced_by=parent_id,
        )  # fmt: skip
    with run_scope(client, parent_id):
        seeded = [spec.model_copy(update={"seed": seed}) for seed in spec.run_seeds]
        with timings.phase("data"):  # per_seed: a store each
            urls = [url or ensure_data(s, progress=progress) for s in seeded]
        with timings.phase("methods"):
            runs: list[_MethodRun] = []
            for s, seed_url in zip(seeded, urls, strict=True):
                for m in spec.methods:
                    with _others_wait(list(runs), None):  # not the new run: its own start
                        runs.append(_start_method(s, m, seed_url, client, experiment_id, parent_id))
            rows = _run_methods(runs, client, progress)
        with timings.phase("result_logging"):
            client.log_text(parent_id, format_table(rows), "results.md")
            if spec.evaluation.figure:
                log_parent_comparison(client, parent_id, title=f"{spec.name} ({spec.setting})")
            oracles = {
                m.name for m in spec.methods if getattr(m, "training_data", "") == "complete"
            }
            agreement = agreement_metrics(rows, exclude=oracles)  # spearman_*: held-out vs truth
        log_metrics(
            client, parent_id, {**timings.metrics(), "time_ray_start_s": ray_start, **agreement}
        )
    return [{"setting": spec.setting, **r} for r in rows]


def dry_run(spec: ExperimentSpec) -> str:
    """The resolved spec as YAML, plus where things will go — nothing is started."""
    lines = [
        dump_spec(spec).rstrip(),
        "# resolved:",
        f"#   mlflow: {resolve_tracking_uri(spec.mlflow.tracking_uri)} (experiment {spec.experiment_name!r})",
    ]
    for variant in variants_of(spec):
        where = "one store per seed" if variant.data.per_seed else f"store {store_url_of(variant)}"
        lines.append(f"#   setting {variant.setting!r}: {where}")
        if variant.ray.shared_worker_group:
            lines.append("#   its trainings share one Ray Train worker group (one after the other)")
        for seed in variant.run_seeds:
            seeded = variant.model_copy(update={"seed": seed})
            if variant.data.per_seed:
                lines.append(f"#     data of seed {seed}: store {store_url_of(seeded)}")
            for m in variant.methods:
                if isinstance(m, DiffusionMethod):
                    lines.append(
                        f"#     ray train run for {m.name} (seed {seed}): {run_name(seeded, m)}"
                    )
                if isinstance(m, DincaeMethod):
                    name = dincae_run_name(seeded, m)
                    lines.append(f"#     ray train run for {m.name} (seed {seed}): {name}")
    return "\n".join(lines)
