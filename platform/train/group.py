"""The diffusion trainings of an experiment in one Ray Train worker group (Alg. 1, in turn).

Every ``TorchTrainer.fit()`` starts a controller and fresh worker processes, which import torch
and Ray Train and set up the process group before the first step: a fixed cost per fit that a
short training feels. :func:`train_jobs` trains the methods × seeds of a data setting in one
fit (``ray.shared_worker_group``, on by default), so that they pay it once; each training still
builds its own loaders, model and optimiser from its own config (:mod:`group_worker`), so its
weights are the ones a fit of its own gives.

Layout under ``ray.storage_path``: a training alone keeps its Ray Train run folder
``<experiment>-<hash>`` (:func:`driver.run_name`); a group's folder
``<experiment>-group-<hash of its trainings' names>`` holds each training's checkpoints as
``<run name>-step<step>``, and keeps every training's final checkpoint and the latest one. Before
a fit, the newest whole checkpoint of each training is looked up on disk in both (local storage
only, :mod:`stored`): a training found finished is not trained again (its MLflow run is tagged
``resumed_from_step``), one found part-trained resumes from it, and the run folder about to be
fitted has a snapshot that no longer matches its checkpoints set aside.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import ray.train
from ray.train.torch import TorchTrainer

from incdyn.platform.spec import DiffusionMethod, ExperimentSpec
from incdyn.platform.tracking import TAG_RESUMED, RunLogger
from incdyn.platform.train.driver import (
    apply_fit_env,
    run_config,
    run_name,
    scaling_config,
    storage_path,
    train_method,
    training_phases,
    worker_config,
    worker_phases,
)
from incdyn.platform.train.group_worker import train_group_per_worker
from incdyn.platform.train.stored import GROUP_MARK, Found, repair_snapshot, stored_checkpoints
from incdyn.platform.train.worker import RANK_METRIC, TRAIN_RUN_METRIC


@dataclass(frozen=True)
class TrainingJob:
    """One diffusion method of one seeded spec, its store and its MLflow run (for curves)."""

    spec: ExperimentSpec
    method: DiffusionMethod
    store_url: str
    run_id: str | None

    @property
    def name(self) -> str:
        return run_name(self.spec, self.method)


@dataclass(frozen=True)
class Trained:
    """A training's weights and its share of the wall time, by phase (``train_overhead``:
    Ray Train's controller, the worker group's start and stop, split evenly in a group)."""

    checkpoint: ray.train.Checkpoint
    phases: dict[str, float]


def group_name(jobs: list[TrainingJob]) -> str:
    digest = hashlib.sha256("\n".join(j.name for j in jobs).encode()).hexdigest()[:10]
    return f"{jobs[0].spec.name}{GROUP_MARK}{digest}"


def find_stored(jobs: list[TrainingJob]) -> Found:
    """The newest whole checkpoint of each training of ``jobs`` on disk, by run name (none for
    remote storage)."""
    root = storage_path(jobs[0].spec)
    names = list(dict.fromkeys(job.name for job in jobs))
    return {} if "://" in root else stored_checkpoints(Path(root), names)


def train_jobs(
    jobs: list[TrainingJob], *, tracking_uri: str, shared: bool = True, found: Found | None = None
) -> dict[str, Trained]:
    """Train ``jobs`` (methods that share weights are trained once), by run name.

    With ``shared`` and more than one training left, all of them run in one worker group; else
    each in its own (:func:`driver.train_method`, as a sweep trial does). ``found``: what
    :func:`find_stored` returned for ``jobs``, if the caller has looked already.
    """
    first: dict[str, TrainingJob] = {}
    for job in jobs:
        first.setdefault(job.name, job)
    found = find_stored(jobs) if found is None else found
    out: dict[str, Trained] = {}
    todo = []
    for name, job in first.items():
        step, checkpoint = found.get(name, (0, None))
        if step >= job.spec.training.steps:
            out[name] = Trained(checkpoint, {"train_overhead": 0.0})
        else:
            todo.append(job)
    if shared and len(todo) > 1:
        out.update(_fit_group(todo, found, tracking_uri))
    else:
        for job in todo:
            out[job.name] = _fit_alone(job, found, tracking_uri)
    trained_here = {job.run_id for job in todo}
    for job in jobs:  # no step of these was trained for this run: found finished, or shared
        if job.run_id and job.run_id not in trained_here:
            RunLogger(tracking_uri, job.run_id).tag(TAG_RESUMED, str(job.spec.training.steps))
    return out


def _resume_path(found: dict, name: str) -> str | None:
    return found[name][1].path if name in found else None


def _repair(spec: ExperimentSpec, run_folder: str) -> None:
    folder = Path(storage_path(spec)) / run_folder
    if folder.is_dir():
        repair_snapshot(folder)


def _fit_alone(job: TrainingJob, found: dict, tracking_uri: str) -> Trained:
    started_at, t0 = time.time(), time.perf_counter()
    result = train_method(
        job.spec, job.method, store_url=job.store_url, tracking_uri=tracking_uri,
        run_id=job.run_id, resume_from=_resume_path(found, job.name),
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if result.checkpoint is None:
        raise RuntimeError(f"training {job.name!r} left no checkpoint ({result.error})")
    return Trained(
        result.checkpoint, training_phases(result, started_at=started_at, seconds=seconds)
    )


def _fit_group(todo: list[TrainingJob], found: dict, tracking_uri: str) -> dict[str, Trained]:
    spec = todo[0].spec
    if any(job.spec.ray != spec.ray for job in todo):
        raise ValueError("the trainings of one worker group must share their `ray` settings")
    _repair(spec, group_name(todo))
    scaling = scaling_config(spec)
    cpus = scaling.resources_per_worker["CPU"]
    configs = [
        worker_config(
            j.spec,
            j.method,
            store_url=j.store_url,
            tracking_uri=tracking_uri,
            run_id=j.run_id,
            cpus=cpus,
            resume_from=_resume_path(found, j.name),
        )
        for j in todo
    ]
    checkpoints = ray.train.CheckpointConfig(
        num_to_keep=len(todo) + 1,  # every training's final checkpoint, and the latest
        checkpoint_score_attribute=RANK_METRIC,
        checkpoint_score_order="max",
    )
    apply_fit_env()
    trainer = TorchTrainer(
        train_group_per_worker,
        train_loop_config={"jobs": configs},
        scaling_config=scaling,
        run_config=run_config(spec, group_name(todo), checkpoints),
    )
    started_at, t0 = time.time(), time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - t0
    by_name = {j.name: j for j in todo}
    finals = {}
    for checkpoint, metrics in result.best_checkpoints or []:
        job = by_name.get(metrics.get(TRAIN_RUN_METRIC))
        if job is not None and int(metrics["step"]) >= job.spec.training.steps:
            name = job.name
            finals[name] = (checkpoint, worker_phases(metrics, started_at=started_at))
    missing = [j.name for j in todo if j.name not in finals]
    if missing:
        raise RuntimeError(f"group {group_name(todo)!r} left no final checkpoint of {missing}")
    worker_total = sum(sum(phases.values()) for _, phases in finals.values())
    overhead = max(0.0, seconds - worker_total) / len(todo)
    return {
        name: Trained(checkpoint, {**phases, "train_overhead": overhead})
        for name, (checkpoint, phases) in finals.items()
    }
