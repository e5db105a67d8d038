"""Train one diffusion method with Ray Train's ``TorchTrainer`` (DDP across workers); the
configs shared with :mod:`group`, which trains several in one worker group.

The run's name is derived from the resolved spec (no timestamps): fitting the same spec again
resumes from its latest checkpoint in ``RunConfig.storage_path``.

Ray Train's controller polls its workers every ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` (2 s by
default), and it notices the end of training only at a poll: incdyn sets
:data:`HEALTH_CHECK_INTERVAL_S` unless the variable is already set (a poll is one small remote
call, which is cheap beside the seconds it saves at the end of every ``fit()``).

With ``training.compile``, every worker compiles into one cache under the storage path
(:func:`compile_cache_dir`): the trainings of an experiment or a sweep that build the same model
pay its compilation once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ray.train
from ray.train.torch import TorchTrainer

from incdyn.platform import kill_points
from incdyn.platform.job_paths import resolve_local
from incdyn.platform.ray_session import cpus_per_worker
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec
from incdyn.platform.timings import PREFIX, SUFFIX, is_timing
from incdyn.platform.train.stored import repair_snapshot, stored_checkpoints
from incdyn.platform.train.worker import COMPILE_CACHE_ENV, train_loop_per_worker

HEALTH_CHECK_INTERVAL_S = "0.2"
HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # read by Ray Train's controller


def apply_fit_env() -> None:
    """Ray Train's settings for the ``fit()`` calls of this process (kept where already set);
    Ray Train passes them on to its controller and workers."""
    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)


def run_name(spec: ExperimentSpec, method: DiffusionMethod) -> str:
    """``<experiment>-<hash of what determines the weights>``.

    Only training inputs enter the hash (seed, data, backbone, schedule, training, partition),
    not the method's name or sampler: methods that differ only at inference (Tables 4 and 7)
    share one Ray Train run, and the second finds it finished instead of training again.
    """
    d = spec.to_dict()
    key = {k: d[k] for k in ("seed", "data", "schedule", "training")}
    key["backbone"] = spec.backbone_of(method).model_dump(mode="json")
    key["partition"] = method.partition.model_dump(mode="json")
    if method.training_data != "observed":  # the oracle's weights differ (other runs' hashes kept)
        key["training_data"] = method.training_data
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return f"{spec.name}-{digest}"


def storage_path(spec: ExperimentSpec) -> str:
    return resolve_local(spec.ray.storage_path)


def compile_cache_dir(spec: ExperimentSpec) -> str | None:
    """Where ``training.compile`` keeps Inductor's compiled graphs and kernels, shared by every
    training of the experiments and sweeps that use this storage path, so that a second run of
    the same model reads its compilation instead of compiling again.

    ``$TORCHINDUCTOR_CACHE_DIR`` of the calling process when set; else
    ``<ray.storage_path>/torch_compile_cache`` for a local (or shared file system) path; None
    for remote storage (``gs://...``), where each worker keeps torch's own default.
    """
    if os.environ.get(COMPILE_CACHE_ENV):
        return os.environ[COMPILE_CACHE_ENV]
    root = storage_path(spec)
    return None if "://" in root else str(Path(root) / "torch_compile_cache")


def train_method(
    spec: ExperimentSpec,
    method: DiffusionMethod,
    *,
    store_url: str,
    tracking_uri: str,
    run_id: str | None,
    callbacks: list | None = None,
    resume_from: str | None = None,
) -> ray.train.Result:
    """Fit ``method`` and return Ray Train's result (``result.checkpoint`` holds the weights).

    ``callbacks`` go to the Train ``RunConfig`` (a Tune trial passes ``TuneReportCallback()``).
    ``resume_from``: a checkpoint of the same weights found before (a shared worker group's),
    else the newest whole one on disk (:mod:`stored`); the worker takes it when it is newer than
    Ray Train's latest. Finding trainings that are already finished, so as not to fit them at
    all, is :func:`group.train_jobs`'s.
    """
    root, name = storage_path(spec), run_name(spec, method)
    if "://" not in root:  # after a kill: a snapshot that names gone checkpoints is set aside
        if (Path(root) / name).is_dir():
            repair_snapshot(Path(root) / name)
        if resume_from is None:
            found = stored_checkpoints(Path(root), [name]).get(name)
            resume_from = found[1].path if found else None
    scaling = scaling_config(spec)
    config = worker_config(
        spec, method, store_url=store_url, tracking_uri=tracking_uri, run_id=run_id,
        cpus=scaling.resources_per_worker["CPU"], resume_from=resume_from,
    )  # fmt: skip
    apply_fit_env()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=scaling,
        run_config=run_config(spec, name, ray.train.CheckpointConfig(num_to_keep=2), callbacks),
    )
    return trainer.fit()


def worker_config(
    spec: ExperimentSpec,
    method: DiffusionMethod,
    *,
    store_url: str,
    tracking_uri: str,
    run_id: str | None,
    cpus: float,
    resume_from: str | None = None,
) -> dict:
    """What :func:`worker.train_loop_per_worker` needs for one training on ``cpus`` per worker."""
    return {
        "spec": spec.to_dict(),
        "method": method.model_dump(mode="json"),
        "store": store_url,
        "tracking_uri": tracking_uri,
        "run_id": run_id,
        "train_run": run_name(spec, method),
        "resume_from": resume_from,
        "threads": max(1, int(cpus)),
        "probe_dir": os.environ.get("INCDYN_PROBE_DIR"),  # per-worker diagnostics (probe.py)
        "compile_cache": compile_cache_dir(spec) if spec.training.compile else None,
        **kill_points.worker_fields(),  # fault injection ($INCDYN_KILL_AT), unset by default
    }


def scaling_config(spec: ExperimentSpec) -> ray.train.ScalingConfig:
    cpus = cpus_per_worker(spec.ray.num_workers, spec.ray.cpus_per_worker)
    resources = {"CPU": cpus}
    if spec.ray.use_gpu:
        resources["GPU"] = 1
    return ray.train.ScalingConfig(
        num_workers=spec.ray.num_workers, use_gpu=spec.ray.use_gpu, resources_per_worker=resources
    )


def run_config(
    spec: ExperimentSpec,
    name: str,
    checkpoints: ray.train.CheckpointConfig,
    callbacks: list | None = None,
) -> ray.train.RunConfig:
    return ray.train.RunConfig(
        name=name,
        storage_path=storage_path(spec),
        failure_config=ray.train.FailureConfig(max_failures=spec.ray.max_failures),
        checkpoint_config=checkpoints,
        callbacks=callbacks,
    )


def training_phases(
    result: ray.train.Result, *, started_at: float, seconds: float
) -> dict[str, float]:
    """Seconds per phase of one :func:`train_method` call that took ``seconds`` from
    ``started_at`` (epoch seconds): the rank-0 worker's own phases from its last report
    (setup, steps, validation, checkpoint save, ...) when that worker started during this call,
    and ``train_overhead``, the rest: Ray Train's controller, the worker group's start and
    stop, the last report and the checkpoint's persistence."""
    worker = worker_phases(result.metrics or {}, started_at=started_at)
    return {**worker, "train_overhead": max(0.0, seconds - sum(worker.values()))}


def worker_phases(metrics: dict, *, started_at: float) -> dict[str, float]:
    """The worker's ``time_<phase>_s`` of a report, by phase; none if that worker started
    before ``started_at`` (epoch seconds): an earlier call's training."""
    if float(metrics.get("worker_started_at", 0.0)) < started_at - 1.0:
        return {}
    return {k[len(PREFIX) : -len(SUFFIX)]: float(v) for k, v in metrics.items() if is_timing(k)}
