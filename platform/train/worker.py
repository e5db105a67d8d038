"""The training loop that every Ray Train worker runs (Alg. 1).

``train_loop_per_worker(config)`` is handed to ``TorchTrainer``: each worker reads its own shard
of the training split (``prepare_data_loader`` adds the distributed sampler), the denoiser is
wrapped in DDP by ``prepare_model`` when there is more than one worker, and rank 0 writes
checkpoints (state_dict + resolved spec) and logs the curves to the method's MLflow run.

Every report also carries the worker's wall-time breakdown so far (``time_<phase>_s``: setup,
steps, validation, checkpoint save, validation imputation, curve logging, Ray Train's report)
and ``worker_started_at`` (epoch seconds), which the driver logs with its own phases. With
``training.compile`` the first step is its own phase, ``compile``: it compiles the backbone (or
reads the compilation from the cache) as well as taking the step.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from torch.utils.data import DataLoader

from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.backbones.registry import build_denoiser
from incdyn.models.objective import complete_data_loss, data_matching_loss
from incdyn.models.partition import Partition, partition_for
from incdyn.platform import kill_points
from incdyn.platform.checkpoint import is_complete, read_meta, save_checkpoint
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, parse_spec
from incdyn.platform.timings import Timings, is_timing, metric_name
from incdyn.platform.tracking import TAG_RESUMED, RunLogger
from incdyn.platform.train.loader import build_training_loader
from incdyn.platform.train.lr_schedule import learning_rate
from incdyn.platform.train.probe import WorkerProbe

COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"  # read by torch's Inductor at its first compile


@torch.no_grad()
def mean_batch_loss(model, loader: DataLoader, loss, seed: int, device) -> float:
    """``loss(model, x_obs, mask, generator)`` averaged over the samples of ``loader``, its
    randomness from a generator seeded with ``seed`` (the same at every call); ``model`` is in
    eval mode meanwhile."""
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    total, n = 0.0, 0
    for batch in loader:
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        total += float(loss(model, x, m, g)) * x.shape[0]
        n += x.shape[0]
    model.train()
    return total / max(n, 1)


def validation_loss(model, loader: DataLoader, partition: Partition, seed: int, device) -> float:
    """The training objective on the validation split's observed data, with fixed randomness.

    Runs on rank 0 alone, so ``model`` must be the bare denoiser: a DDP forward would wait for
    a buffer broadcast from the other ranks.
    """
    loss = lambda net, x, m, g: data_matching_loss(net, x, m, partition, g)  # noqa: E731
    return mean_batch_loss(model, loader, loss, seed, device)


@dataclass
class _Run:
    """What one worker's loop works with, built once at its start."""

    spec: ExperimentSpec
    method: DiffusionMethod
    rank: int
    world: int
    device: torch.device
    partition: Partition
    loader: DataLoader
    val_loader: DataLoader | None
    denoiser: torch.nn.Module
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    meta: dict[str, Any]
    started_at: float = 0.0  # epoch seconds at the worker loop's start (not in checkpoints)


def _setup(config: dict[str, Any]) -> _Run:
    spec = parse_spec(config["spec"], "(train loop config)")
    method = DiffusionMethod.model_validate(config["method"])
    training = spec.training
    kill_points.arm(config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()
    partition = partition_for(method.partition, spec.data.observation)

    # 1. Data: this worker's shard of the training split (the distributed sampler splits it).
    # the complete-data oracle alone reads the complete training fields (truth)
    complete = method.training_data == "complete"
    train_set = SplitDataset(
        config["store"], "train", with_truth=complete, cache_bytes=int(training.cache_mb * 2**20)
    )
    loader = build_training_loader(train_set, training.batch_size, spec.seed, rank, world)
    loader = ray.train.torch.prepare_data_loader(loader, add_dist_sampler=False)
    val_loader = None
    if rank == 0:
        val_set = SplitDataset(config["store"], "val", limit=training.val_samples)
        val_loader = DataLoader(val_set, batch_size=training.batch_size)

    # 2. Model and optimiser; DDP when world > 1.
    denoiser = build_denoiser(
        spec.backbone_of(method),  # a method may bring its own backbone (Table 5)
        spec.schedule,
        channels=len(train_set.channels),
        frames=train_set.shape[0],
        seed=spec.seed,  # same seed, same initial weights (DDP then broadcasts rank 0's)
    )
    if training.compile:  # in place: parameter names, hence checkpoints, stay the same
        if config.get("compile_cache"):  # shared with the other trainings (driver.py)
            os.environ[COMPILE_CACHE_ENV] = config["compile_cache"]
        denoiser.backbone.compile()
    model = ray.train.torch.prepare_model(denoiser)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr, betas=training.betas)
    meta = checkpoint_meta(train_set, config)
    return _Run(
        spec,
        method,
        rank,
        world,
        device,
        partition,
        loader,
        val_loader,
        denoiser,
        model,
        optimizer,
        meta,
    )


def restore(
    checkpoint: ray.train.Checkpoint | None,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
) -> int:
    """3. The step to start from: ``checkpoint``'s (the latest after a failure or a rerun), its
    model and optimizer state loaded into ``module`` and ``optimizer``; else 0.

    A checkpoint written on another number of CPU threads than this worker's is resumed with a
    warning: torch's sums depend on the thread count, so the weights will not be an uninterrupted
    run's to the last digit."""
    if not checkpoint:
        return 0
    with checkpoint.as_directory() as d:
        load = lambda name: torch.load(  # noqa: E731
            Path(d) / name, map_location=device, weights_only=True
        )
        module.load_state_dict(load("model.pt"))
        optimizer.load_state_dict(load("optimizer.pt"))
        meta = read_meta(d)
    threads = meta.get("threads")
    if threads is not None and threads != torch.get_num_threads():
        warnings.warn(
            f"resuming on {torch.get_num_threads()} CPU threads a training checkpointed on "
            f"{threads}: its weights will differ from an uninterrupted run's in the last digits; "
            "set ray.cpus_per_worker for an exact resume",
            stacklevel=2,
        )
    return int(meta["step"])


def checkpoint_meta(train_set, config: dict) -> dict:
    """What a checkpoint records beside its weights: normalisation, method, channels, window,
    grid, spec, store, the Ray Train run name of these weights and the CPU threads training ran
    on."""
    return {
        "normalization": {
            "mean": train_set.mean.ravel().tolist(),
            "std": train_set.std.ravel().tolist(),
        },
        "method": config["method"],
        "channels": list(train_set.channels),
        "frames": train_set.shape[0],
        "grid": list(train_set.shape[2:]),
        "spec": config["spec"],
        "store": config["store"],
        "train_run": config.get("train_run"),
        "threads": torch.get_num_threads(),  # a resume on other threads warns (restore)
    }


def _checkpoint_val_metrics(run: _Run) -> dict[str, float]:
    """``ckpt_val_mse`` / ``ckpt_val_heldout_mse`` of the current weights: the method's
    single-step ensemble on ``training.val_samples`` validation samples (rank 0 only)."""
    from incdyn.platform.evaluation.evaluate import impute_validation

    was_training = run.denoiser.training
    run.denoiser.eval()
    try:
        metrics = impute_validation(
            run.denoiser,
            run.spec,
            run.method,
            store_url=run.meta["store"],
            limit=run.spec.training.val_samples,
            device=str(run.device),
        )
    finally:
        run.denoiser.train(was_training)
    names = ("test_mse", "test_heldout_mse")
    return {"ckpt_val" + n[4:]: metrics[n] for n in names if n in metrics}


@dataclass(frozen=True)
class Slot:
    """Where one training sits in a shared worker group (:mod:`group_worker`): its reports
    carry its run name, its checkpoints are named after it, and a rank by which the group's
    ``CheckpointConfig`` keeps every training's final checkpoint and the latest one."""

    train_run: str
    index: int

    def report_fields(self, step: int, final: bool) -> dict[str, Any]:
        # finals above every intermediate; later trainings' intermediates above earlier ones'
        rank = 10**12 + self.index if final else self.index * 10**7 + step
        return {TRAIN_RUN_METRIC: self.train_run, RANK_METRIC: rank}

    def checkpoint_dir_name(self, step: int) -> str:
        return f"{self.train_run}-step{step:07d}"


TRAIN_RUN_METRIC = "train_run"  # in every report of a shared group: whose training it is
RANK_METRIC = "checkpoint_rank"  # the group's checkpoint score (Slot.report_fields)


def _report(
    run: _Run, step: int, metrics: dict[str, Any], logger, probe, timings: Timings,
    slot: Slot | None = None,
) -> None:  # fmt: skip
    """Validation loss (rank 0), checkpoint when due, MLflow curves, and Ray Train's report."""
    training = run.spec.training
    save = step == training.steps or step % training.checkpoint_every == 0
    if run.rank == 0:
        with timings.phase("validation"):
            metrics["val_loss"] = validation_loss(
                run.denoiser, run.val_loader, run.partition, run.spec.seed, run.device
            )
        if save and training.val_imputation:
            with timings.phase("val_imputation"):
                metrics.update(_checkpoint_val_metrics(run))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if run.rank == 0 and save:
            with timings.phase("checkpoint_save"):
                meta = {**run.meta, "step": step}
                save_checkpoint(tmp, model=run.denoiser, optimizer=run.optimizer, meta=meta)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
        if logger:
            with timings.phase("curve_logging"):
                curves = {k: v for k, v in metrics.items() if k != "step" and not is_timing(k)}
                logger.metrics(curves, step)
        if probe:
            probe.report(step, metrics["train_loss"], run.denoiser)
        metrics.update({metric_name(k): v for k, v in timings.seconds.items()})
        metrics["worker_started_at"] = run.started_at
        dir_name = None
        if slot is not None:
            metrics.update(slot.report_fields(step, final=step == training.steps))
            dir_name = slot.checkpoint_dir_name(step) if ckpt is not None else None
        with timings.phase("report"):
            ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=dir_name)
        if ckpt is not None:
            kill_points.reached("checkpoint_reported")


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One training: resumes from the newer of Ray Train's latest checkpoint of this run and
    ``config["resume_from"]`` (which a kill may have left newer than Ray Train's)."""
    train(config, newest(ray.train.get_checkpoint(), found_checkpoint(config)))


def newest(*checkpoints: ray.train.Checkpoint | None) -> ray.train.Checkpoint | None:
    """The whole checkpoint of the highest step among ``checkpoints`` (None ones left out);
    one that is incomplete is never loaded: it is passed over with a warning."""
    best, best_step = None, -1
    for checkpoint in checkpoints:
        if checkpoint is None:
            continue
        with checkpoint.as_directory() as d:
            if not is_complete(d):
                warnings.warn(
                    f"passing over {checkpoint.path}: an incomplete checkpoint", stacklevel=2
                )
                continue
            step = int(read_meta(d)["step"])
        if step > best_step:
            best, best_step = checkpoint, step
    return best


def found_checkpoint(config: dict[str, Any]) -> ray.train.Checkpoint | None:
    """``config["resume_from"]``: a checkpoint of the same weights that the driver found
    before the fit (a shared worker group's, or this run's own), if any."""
    path = config.get("resume_from")
    return ray.train.Checkpoint(path) if path else None


def _observers(config: dict[str, Any], run: _Run, step: int):
    """Rank 0's MLflow curve logger (the run tagged ``resumed_from_step`` after a resume), and
    the per-worker diagnostics for tests: node, sample indices, parameter checksum (probe.py)."""
    logger = (
        RunLogger(config["tracking_uri"], config["run_id"])
        if run.rank == 0 and config.get("run_id")
        else None
    )
    if logger and step > 0:
        logger.tag(TAG_RESUMED, str(step))
    probe = (
        WorkerProbe(
            config["probe_dir"],
            rank=run.rank,
            world=run.world,
            start_step=step,
            train_run=config.get("train_run"),
        )
        if config.get("probe_dir")
        else None
    )
    return logger, probe


def train(
    config: dict[str, Any], checkpoint: ray.train.Checkpoint | None, slot: Slot | None = None
) -> None:
    """Alg. 1 on this worker, from ``checkpoint``'s step (or 0) to ``training.steps``."""
    timings, started_at = Timings(), time.time()
    with timings.phase("worker_setup"):
        run = _setup(config)
        step = restore(checkpoint, run.denoiser, run.optimizer, run.device)
    run.started_at = started_at
    training, seed = run.spec.training, run.spec.seed
    logger, probe = _observers(config, run, step)
    bf16 = training.precision == "bf16"  # autocast forward and loss; weights stay fp32

    # 4. Loop over optimiser steps; per-(seed, rank, step) randomness for partitions and noise.
    device, model, optimizer, loader = run.device, run.model, run.optimizer, run.loader
    # A resumed training takes the batches and noise an uninterrupted one would: the epoch's
    # order is seeded by the epoch, its batches before the checkpoint are skipped, and the
    # generator is seeded afresh at every step.
    g = torch.Generator(device=device)
    running, count, t0, epoch = 0.0, 0, time.perf_counter(), step // max(1, len(loader))
    if hasattr(getattr(loader, "sampler", None), "skip"):
        loader.sampler.skip = (step % max(1, len(loader))) * training.batch_size
    model.train()
    mark = time.perf_counter()
    while step < training.steps:
        if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            if step >= training.steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, training)
            if probe:
                probe.saw(epoch, batch["index"])
            g.manual_seed(seed * 100_003 + run.rank * 1_009 + step)
            x, m = batch["x_obs"].to(device), batch["mask"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                if "truth" in batch:  # the complete-data oracle
                    loss = complete_data_loss(model, batch["truth"].to(device), m, run.partition, g)
                else:
                    loss = data_matching_loss(model, x, m, run.partition, g)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if training.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
            optimizer.step()
            step += 1
            kill_points.reached("train_step")
            running += loss.item()
            count += 1
            if training.compile and "compile" not in timings.seconds:
                now = time.perf_counter()
                timings.add("compile", now - mark)
                mark = now
            if step % training.log_every and step != training.steps:
                continue
            metrics = {
                "step": step,
                "train_loss": running / count,
                "lr": learning_rate(step - 1, training),
                "steps_per_s": count / (time.perf_counter() - t0),
                "epoch": epoch,
            }
            running, count, t0 = 0.0, 0, time.perf_counter()
            timings.add("steps", t0 - mark)
            _report(run, step, metrics, logger, probe, timings, slot)
            mark = time.perf_counter()
        epoch += 1
    if run.world > 1:
        torch.distributed.barrier()
