"""Ray Tune sweeps over the context ratio, query ratio and backbone (Table 6 ablation; search).

    incdyn sweep SPEC --context-ratios 0.5,0.7,0.9 --query-ratios 0.5,0.7,0.9   # grid (Table 6)
    incdyn sweep SPEC --mode asha --num-samples 16 --context-ratios 0.3,0.5,0.7,0.9

The swept method is the spec's first diffusion method (or ``--method NAME``): its ensemble,
sampler and partition kind are every trial's, its ratios and backbone the default of each axis.
Each trial (:mod:`~incdyn.platform.sweep.trial`) trains through Ray Train, imputes the test split
and is an MLflow child run (``incdyn.role=trial``) of one sweep parent run per data setting.
The best configuration has the lowest mean of the spec's criterion over seeds among the
evaluated trials (``evaluation.criterion``: the held-out observed points' ``val_heldout_mse``,
or the truth's ``val_mse`` when the spec asks for it or has no held-out points): the test split
never chooses. ASHA stops trials on
``val_loss``, the only validation figure logged while a trial trains.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from typing import Any, Literal

import mlflow
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from incdyn.platform import kill_points
from incdyn.platform.console import configure, trial_bar_callback
from incdyn.platform.data_prep import ensure_data
from incdyn.platform.evaluation.audit import check_exposure
from incdyn.platform.ghosts import TAG_REPLACED_BY, reap_ghosts
from incdyn.platform.job_paths import check_job_paths
from incdyn.platform.owner import owner_gone, owner_tags
from incdyn.platform.ray_session import init_ray
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, variants_of
from incdyn.platform.sweep.resources import (
    TRIAL_CPU,
    TrialResources,
    cluster_resources,
    plan_resources,
)
from incdyn.platform.sweep.summary import SweepResult, collect_trials, summarize
from incdyn.platform.sweep.trial import (
    resolved_dict,
    run_trial,
    swept_method,
    trial_spec,
)
from incdyn.platform.tracking import (
    ROLE_SWEEP,
    TAG_METHOD,
    TAG_PARENT,
    TAG_SWEEP_MODE,
    resolve_tracking_uri,
    run_scope,
    start_parent,
)
from incdyn.platform.train.driver import storage_path

TAG_SWEEP_KEY = "incdyn.sweep_key"  # on a sweep's parent: what identifies it (sweep_key)
TAG_TUNE_RUN = "incdyn.tune_run"  # on a sweep's parent: its Tune run's name under storage_path


def _search(
    spec: ExperimentSpec,
    mode: str,
    axes: dict[str, list],
    seeds: list[int],
    grace_period: int | None,
    reduction_factor: float,
) -> tuple[dict[str, Any], ASHAScheduler | None]:
    """Tune's param space and scheduler: the full grid, or draws stopped early by ASHA."""
    if mode == "grid":
        return {k: tune.grid_search(v) for k, v in axes.items()} | {
            "seed": tune.grid_search(seeds)
        }, None
    steps = spec.training.steps
    scheduler = ASHAScheduler(
        time_attr="step",  # optimiser steps: rungs at grace × rf^k steps
        metric="val_loss",
        mode="min",
        max_t=steps,
        grace_period=grace_period or max(1, steps // 4),
        reduction_factor=reduction_factor,
        stop_last_trials=False,  # reaching max_t must not stop a trial: it still imputes the test split
    )
    return {k: tune.choice(v) for k, v in axes.items()} | {"seed": spec.seed}, scheduler


def _check_trials(
    spec: ExperimentSpec, variants: list[ExperimentSpec], method: str | None, axes: dict
) -> None:
    """Every trial's spec validates and passes the exposure audit, before Ray starts."""
    for variant in variants:
        for c, q, b in itertools.product(*axes.values()):
            trial, _ = trial_spec(
                variant, method=method, context_ratio=c, query_ratio=q, backbone=b, seed=spec.seed
            )
            if b == axes["backbone"][0]:  # the audit does not depend on the backbone
                check_exposure(trial)


def run_sweep(
    spec: ExperimentSpec,
    *,
    mode: Literal["grid", "asha"] = "grid",
    method: str | None = None,
    context_ratios: list[float] | None = None,
    query_ratios: list[float] | None = None,
    backbones: list[str] | None = None,
    num_samples: int = 1,
    max_concurrent: int | None = None,
    grace_period: int | None = None,
    reduction_factor: float = 2.0,
    progress: bool = True,
    verbose: bool = True,
) -> list[SweepResult]:
    """Sweep one diffusion method of ``spec`` with Ray Tune; one result per data setting.

    grid: every (context ratio, query ratio, backbone, seed of ``spec.run_seeds``). asha:
    ``num_samples`` trials, each axis drawn from its list (seeded by ``spec.seed``), seed
    ``spec.seed``, stopped early by ASHA on ``val_loss`` (min) at optimiser-step rungs
    ``grace_period × reduction_factor^k`` (default grace: a quarter of the steps).
    Axes left ``None`` hold the method's own ratio or backbone. Every trial's spec is validated
    and passes the exposure audit before Ray starts.
    """
    if mode not in ("grid", "asha"):
        raise ValueError(f"mode must be 'grid' or 'asha', got {mode!r}")
    if mode == "grid" and num_samples != 1:
        raise ValueError(
            "grid mode runs every combination once per seed of spec.seeds; num_samples is for asha"
        )
    check_job_paths(spec)  # in a Ray job: nothing written where the job's folder loses it
    template = swept_method(spec, method)
    axes = {
        "context_ratio": list(context_ratios or [template.partition.context_ratio]),
        "query_ratio": list(query_ratios or [template.partition.query_ratio]),
        "backbone": list(backbones or [spec.backbone_of(template).name]),
    }
    variants = variants_of(spec)
    _check_trials(spec, variants, method, axes)
    seeds = spec.run_seeds if mode == "grid" else [spec.seed]
    n_trials = (
        math.prod(len(v) for v in axes.values()) * len(seeds) if mode == "grid" else num_samples
    )

    tracking_uri = resolve_tracking_uri(spec.mlflow.tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(spec.experiment_name)
    configure(verbose)
    init_ray(spec.ray.address, verbose=verbose)
    cpus, gpus, node_cpus = cluster_resources()
    plan = plan_resources(
        num_workers=spec.ray.num_workers,
        use_gpu=spec.ray.use_gpu,
        cpus_per_worker=spec.ray.cpus_per_worker,
        n_trials=n_trials,
        cluster_cpus=cpus,
        cluster_gpus=gpus,
        node_cpus=node_cpus,
        max_concurrent=max_concurrent,
    )
    return [
        _sweep_setting(
            variant,
            mode=mode,
            method=method,
            axes=axes,
            seeds=seeds,
            num_samples=num_samples,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
            n_trials=n_trials,
            plan=plan,
            tracking_uri=tracking_uri,
            experiment_id=experiment.experiment_id,
            progress=progress,
            verbose=verbose,
        )
        for variant in variants
    ]


def _tuner(
    spec: ExperimentSpec,
    trainable: Any,
    space: dict[str, Any],
    scheduler: ASHAScheduler | None,
    num_samples: int,
    plan: TrialResources,
    name: str,
    progress: bool,
    verbose: bool,
    n_trials: int,
) -> tune.Tuner:
    """The Tune run of one sweep: token-CPU trials, at most ``plan.concurrent`` at a time."""
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": TRIAL_CPU}),
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=num_samples,
            # the concurrency limit lives here: Tune ignores max_concurrent_trials when a
            # search_alg is given; random_state: the same draws for the same spec seed
            search_alg=BasicVariantGenerator(
                max_concurrent=plan.concurrent, random_state=spec.seed
            ),
            scheduler=scheduler,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path(spec),
            # Tune's own status table with --verbose; else one bar over the trials
            verbose=1 if progress and verbose else 0,
            callbacks=(
                [trial_bar_callback(n_trials, spec.evaluation.criterion)]
                if progress and not verbose
                else None
            ),
        ),
    )


def sweep_key(spec: ExperimentSpec, *args: Any) -> str:
    """What identifies a sweep: its resolved spec and its command's arguments, hashed."""
    text = json.dumps([resolved_dict(spec), *args], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def adopt_killed_sweep(
    client: MlflowClient, experiment_id: str, spec: ExperimentSpec, key: str
) -> tuple[str | None, str | None]:
    """The parent run and Tune run name of the same sweep (``key``) left RUNNING by a process
    that is gone, taken over by this one: its finished trials are kept, its trial runs left
    RUNNING marked KILLED (their trials run again); (None, None) if there is none."""
    runs = client.search_runs(
        [experiment_id],
        f"attributes.status = 'RUNNING' and tags.`{TAG_SWEEP_KEY}` = '{key}'",
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        if owner_gone(run.data.tags) and run.data.tags.get(TAG_TUNE_RUN):
            parent_id = run.info.run_id
            for tag, value in owner_tags().items():
                client.set_tag(parent_id, tag, value)
            trials = client.search_runs(
                [experiment_id],
                f"attributes.status = 'RUNNING' and tags.`{TAG_PARENT}` = '{parent_id}'",
                max_results=10000,
            )
            for trial in trials:
                client.set_tag(trial.info.run_id, TAG_REPLACED_BY, parent_id)
                client.set_terminated(trial.info.run_id, "KILLED")
            return parent_id, run.data.tags[TAG_TUNE_RUN]
    return None, None


def _parent_run(
    client: MlflowClient,
    experiment_id: str,
    spec: ExperimentSpec,
    key: str,
    mode: str,
    template: DiffusionMethod,
    num_samples: int,
    plan: TrialResources,
    axes: dict[str, list],
) -> tuple[str, str]:
    """The sweep's parent run and Tune run name: a killed attempt's of the same sweep, taken
    over, or new ones; earlier attempts' orphaned runs are marked KILLED."""
    parent_id, tune_name = adopt_killed_sweep(client, experiment_id, spec, key)
    if parent_id is None:
        parent_id = start_parent(
            client,
            experiment_id,
            spec,
            role=ROLE_SWEEP,
            run_name=f"{spec.name} ({spec.setting}) sweep-{mode}",
            tags={TAG_METHOD: template.name, TAG_SWEEP_MODE: mode, TAG_SWEEP_KEY: key},
            params={
                "sweep.mode": mode,
                "sweep.method": template.name,
                "sweep.num_samples": str(num_samples),
                "sweep.max_concurrent_trials": str(plan.concurrent),
                "sweep.cpus_per_worker": str(plan.cpus_per_worker),
                **{f"sweep.{k}": str(v) for k, v in axes.items()},
            },
        )
        tune_name = f"{spec.name}-sweep-{parent_id[:8]}"
        client.set_tag(parent_id, TAG_TUNE_RUN, tune_name)
    reap_ghosts(
        client, experiment_id, spec_name=spec.name, setting=spec.setting, role=ROLE_SWEEP,
        replaced_by=parent_id,
    )  # fmt: skip
    return parent_id, tune_name


def _sweep_setting(
    spec: ExperimentSpec,
    *,
    mode: str,
    method: str | None,
    axes: dict[str, list],
    seeds: list[int],
    num_samples: int,
    grace_period: int | None,
    reduction_factor: float,
    n_trials: int,
    plan: TrialResources,
    tracking_uri: str,
    experiment_id: str,
    progress: bool,
    verbose: bool = True,
) -> SweepResult:
    """One data setting: its store, a sweep parent run, the Tune run, the summary."""
    t0 = time.perf_counter()
    store_url = ensure_data(spec, progress=progress)
    template = swept_method(spec, method)
    space, scheduler = _search(spec, mode, axes, seeds, grace_period, reduction_factor)
    client = MlflowClient(tracking_uri)
    key = sweep_key(spec, mode, method, axes, seeds, num_samples, grace_period, reduction_factor)
    parent_id, tune_name = _parent_run(
        client, experiment_id, spec, key, mode, template, num_samples, plan, axes
    )
    with run_scope(client, parent_id):
        name = tune_name
        trainable = tune.with_parameters(
            run_trial,
            spec_dict=resolved_dict(spec),
            method=method,
            store_url=store_url,
            tracking_uri=tracking_uri,
            experiment_id=experiment_id,
            parent_id=parent_id,
            cpus_per_worker=plan.cpus_per_worker,
            train_root=f"{storage_path(spec)}/{name}",  # per sweep: never resumes another's run
            kill=kill_points.worker_fields(),  # fault injection, unset by default
        )
        print(
            f"sweep {spec.name} ({spec.setting}, {mode}): {n_trials} trials, {plan.concurrent} at "
            f"a time, {spec.ray.num_workers} worker(s) × {plan.cpus_per_worker} CPU each; "
            f"MLflow run {parent_id}",
            flush=True,
        )
        path = f"{storage_path(spec)}/{name}"
        if tune.Tuner.can_restore(path):  # a killed sweep: its finished trials are kept
            print(f"sweep {name}: resuming its unfinished trials", flush=True)
            tuner = tune.Tuner.restore(
                path, tune.with_resources(trainable, {"cpu": TRIAL_CPU}), resume_errored=True
            )
        else:
            tuner = _tuner(
                spec, trainable, space, scheduler, num_samples, plan, name, progress, verbose,
                n_trials,
            )  # fmt: skip
        grid = tuner.fit()
        errors = {r.path: str(r.error) for r in grid if r.error}  # trial path → error
        trials = collect_trials(client, experiment_id, parent_id, errors)
        result = summarize(
            trials,
            mode=mode,
            parent_run_id=parent_id,
            experiment=spec.experiment_name,
            seconds=time.perf_counter() - t0,
            criterion=spec.evaluation.criterion,
        )
        result.log(client, parent_id, axes)
    print(result.describe(), flush=True)
    return result
