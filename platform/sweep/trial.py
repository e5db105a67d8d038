"""One Tune trial of a sweep: an MLflow child run, a Ray Train fit, a test-split score.

The trial is a Tune *function* (``Tuner(trainer)`` refuses a Train V2 trainer): it builds the
``TorchTrainer`` through :func:`train_method` with ``TuneReportCallback`` forwarding each
Train report (``val_loss``, ``step``) to Tune, then imputes the test split in a Ray task.
"""

from __future__ import annotations

import time
from typing import Any

import ray
import torch
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from incdyn.datasets.errors import UserError
from incdyn.models.backbones.registry import switch_backbone
from incdyn.platform import kill_points
from incdyn.platform.evaluation.evaluate import Evaluation, evaluate_diffusion
from incdyn.platform.report.figures import imputation_figure
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, parse_spec
from incdyn.platform.timings import Timings
from incdyn.platform.tracking import (
    ROLE_TRIAL,
    TAG_TUNE_TRIAL,
    TAG_VARIANT,
    log_evaluation,
    log_metrics,
    start_child,
)
from incdyn.platform.train.driver import train_method, training_phases


def resolved_dict(spec: ExperimentSpec) -> dict:
    """``spec`` as a mapping that parses back to itself: its profile is applied already, and
    ``parse_spec`` would apply it again over any later change (e.g. the trial's CPUs)."""
    return {**spec.to_dict(), "profile": None, "profiles": {}}


def swept_method(spec: ExperimentSpec, name: str | None = None) -> DiffusionMethod:
    """The template of every trial: the diffusion method ``name``, else the first one."""
    diffusion = [m for m in spec.methods if isinstance(m, DiffusionMethod)]
    if name is not None:
        diffusion = [m for m in diffusion if m.name == name]
    if not diffusion:
        names = [m.name for m in spec.methods if isinstance(m, DiffusionMethod)]
        wanted = f"diffusion method {name!r}" if name else "a diffusion method"
        raise UserError(
            "--method", f"spec {spec.name!r} has no {wanted} to sweep; diffusion methods: {names}"
        )
    return diffusion[0]


def trial_spec(
    spec: ExperimentSpec,
    *,
    method: str | None,
    context_ratio: float,
    query_ratio: float,
    backbone: str,
    seed: int,
    **ray_fields: Any,
) -> tuple[ExperimentSpec, DiffusionMethod]:
    """The resolved spec of one trial: only the swept method, with these ratios, backbone, seed.

    ``spec`` has one data setting (a variant). The backbone name replaces the method's own
    backbone if it has one, else the experiment's; its other fields carry over where the new
    backbone takes them (``width`` and ``padding_mode`` from a UNet to an FNO, say).
    """
    d = resolved_dict(spec)
    m = swept_method(spec, method).model_dump(mode="json")
    m["partition"].update(context_ratio=context_ratio, query_ratio=query_ratio)
    target = m if m["backbone"] else d
    target["backbone"] = switch_backbone(target["backbone"], backbone)
    d.update(methods=[m], seed=seed, seeds=[])
    d["ray"].update(ray_fields)
    source = f"{spec.name} trial (context_ratio={context_ratio}, query_ratio={query_ratio}, backbone={backbone})"
    resolved = parse_spec(d, source)
    return resolved, resolved.methods[0]


def variant_label(config: dict[str, Any]) -> str:
    return f"ctx={config['context_ratio']:g} qry={config['query_ratio']:g} {config['backbone']}"


def _evaluate(
    checkpoint: ray.train.Checkpoint,
    threads: int,
    spec: ExperimentSpec,
    method: DiffusionMethod,
    store_url: str,
) -> Evaluation:
    """Test-split imputation, as a Ray task holding what the Train workers released."""
    torch.set_num_threads(threads)
    with checkpoint.as_directory() as d:
        return evaluate_diffusion(d, spec, method, store_url=store_url)


def _evaluate_remote(
    checkpoint: ray.train.Checkpoint,
    spec: ExperimentSpec,
    method: DiffusionMethod,
    store_url: str,
    cpus_per_worker: float,
) -> Evaluation:
    task = ray.remote(_evaluate).options(
        num_cpus=cpus_per_worker,
        num_gpus=1 if spec.ray.use_gpu else 0,
        scheduling_strategy="DEFAULT",
    )
    threads = max(1, int(cpus_per_worker))
    return ray.get(task.remote(checkpoint, threads, spec, method, store_url))


def _train(
    spec: ExperimentSpec,
    method: DiffusionMethod,
    store_url: str,
    tracking_uri: str,
    run_id: str,
    timings: Timings,
) -> ray.train.Result:
    """The trial's Ray Train fit, each report forwarded to Tune; its phases go to ``timings``."""
    started_at, t0 = time.time(), time.perf_counter()
    result = train_method(
        spec,
        method,
        store_url=store_url,
        tracking_uri=tracking_uri,
        run_id=run_id,
        callbacks=[TuneReportCallback()],
    )
    fit_s = time.perf_counter() - t0
    for phase, seconds in training_phases(result, started_at=started_at, seconds=fit_s).items():
        timings.add(phase, seconds)
    return result


def _record(
    client: MlflowClient,
    run_id: str,
    spec: ExperimentSpec,
    checkpoint: ray.train.Checkpoint,
    ev: Evaluation,
    timings: Timings,
    *,
    title: str,
) -> None:
    """Log the trial's checkpoint, test metrics, figure and wall-time phases; end it FINISHED."""
    with timings.phase("checkpoint_artifacts"), checkpoint.as_directory() as ckpt:
        client.log_artifacts(run_id, ckpt, artifact_path="checkpoint")
    figure = None
    if spec.evaluation.figure:
        with timings.phase("figure"):
            figure = imputation_figure(
                ev.example_truth, ev.example_mask, ev.example_imputed, title=title
            )
    with timings.phase("result_logging"):
        log_evaluation(client, run_id, {**ev.metrics, "seconds": timings.elapsed()}, figure=figure)
    log_metrics(client, run_id, timings.metrics())
    client.set_terminated(run_id, "FINISHED")


def run_trial(
    config: dict[str, Any],
    *,
    spec_dict: dict,
    method: str | None,
    store_url: str,
    tracking_uri: str,
    experiment_id: str,
    parent_id: str,
    cpus_per_worker: float,
    train_root: str,
    kill: dict[str, Any] | None = None,
) -> None:
    """The Tune function of one trial (``config``: context_ratio, query_ratio, backbone, seed).

    Nothing here ends the MLflow run on an exception: a trial stopped by ASHA may die by one too,
    or be killed outright. The driver ends runs left RUNNING from Tune's verdict
    (:func:`~incdyn.platform.sweep.summary.collect_trials`). ``kill``: the driver's fault
    injection setting (:mod:`~incdyn.platform.kill_points`), unset by default.
    """
    kill_points.arm(kill or {})
    timings = Timings()
    trial_id = tune.get_context().get_trial_id()
    spec, m = trial_spec(
        parse_spec(spec_dict),
        method=method,
        **config,
        cpus_per_worker=cpus_per_worker,
        storage_path=f"{train_root}/{trial_id}",  # own folder: equal configs never share a run
    )
    client = MlflowClient(tracking_uri)
    variant = variant_label(config)
    with timings.phase("mlflow_start"):
        run_id = start_child(
            client,
            experiment_id,
            parent_id,
            spec,
            m,
            role=ROLE_TRIAL,
            run_name=f"{m.name}/{spec.setting}/{variant}/seed{spec.seed}".replace(" ", "/"),
            tags={TAG_VARIANT: variant, TAG_TUNE_TRIAL: trial_id},
            params={k: str(v) for k, v in config.items()},  # context_ratio, query_ratio, ...
        )

    # 1. Train through Ray Train; TuneReportCallback forwards each report (val_loss) to Tune.
    result = _train(spec, m, store_url, tracking_uri, run_id, timings)
    if result.checkpoint is None:
        raise RuntimeError(f"trial {config}: training left no checkpoint ({result.error})")

    # 2. Impute the test split in a task with the workers' resources, outside the trial's
    #    0.01-CPU placement group (which it would not fit).
    with timings.phase("evaluation"):
        ev = _evaluate_remote(result.checkpoint, spec, m, store_url, cpus_per_worker)

    # 3. Record checkpoint, test metrics, figure, wall-time phases; FINISHED once evaluated.
    title = f"{spec.name}: {m.name} {variant} ({spec.setting}, seed {spec.seed})"
    _record(client, run_id, spec, result.checkpoint, ev, timings, title=title)
    kill_points.reached("sweep_trial")

    # 4. Last Tune result: Tune repeats it when the function returns, and ASHA wants val_loss in it.
    val_loss = (result.metrics or {}).get("val_loss")
    if val_loss is None:
        val_loss = client.get_run(run_id).data.metrics.get("val_loss")
    tune.report({"step": spec.training.steps, "val_loss": val_loss, **ev.metrics})
