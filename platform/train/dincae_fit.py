"""Train a DINCAE-style baseline (Barth et al. 2020, 2022; :mod:`incdyn.models.baselines.dincae`)
with Ray Train's ``TorchTrainer``: its own fit per method and seed, with the experiment's
``training`` section (steps, batch size, learning rate and schedule, gradient clipping, log and
checkpoint intervals) and ``ray`` section (workers, CPUs, GPU) — the diffusion methods' budget.

Each worker reads its shard of the training split as the diffusion training does
(:func:`~incdyn.platform.train.loader.build_training_loader`); the network is wrapped in DDP
when there is more than one worker; rank 0 logs ``train_nll`` and ``val_nll`` (the Gaussian
negative log-likelihood of the observed validation points, with the same hidden points every
time) to the method's MLflow run and writes ``state_dict`` checkpoints (:mod:`checkpoint`).

The Ray Train run's name is a hash of what determines the weights (:func:`dincae_run_name`): a
rerun finds a finished training's final checkpoint on disk and does not train again, and a
part-trained one resumes from its newest whole checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from ray.train.torch import TorchTrainer
from torch.utils.data import DataLoader

from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.baselines.dincae import build_dincae, dincae_loss
from incdyn.platform.checkpoint import save_checkpoint
from incdyn.platform.spec import DincaeMethod, ExperimentSpec, parse_spec
from incdyn.platform.tracking import TAG_RESUMED, RunLogger
from incdyn.platform.train.driver import apply_fit_env, run_config, scaling_config, storage_path
from incdyn.platform.train.loader import build_training_loader
from incdyn.platform.train.lr_schedule import learning_rate
from incdyn.platform.train.stored import repair_snapshot, stored_checkpoints
from incdyn.platform.train.worker import (
    checkpoint_meta,
    found_checkpoint,
    mean_batch_loss,
    newest,
    restore,
)

VAL_SEED_OFFSET = 17  # the validation NLL's hidden points: seeded by spec.seed + this


def dincae_run_name(spec: ExperimentSpec, method: DincaeMethod) -> str:
    """``<experiment>-dincae-<hash of seed, data, training and backbone>``."""
    d = spec.to_dict()
    key = {k: d[k] for k in ("seed", "data", "training")}
    key["backbone"] = spec.backbone_of(method).model_dump(mode="json")
    key["model"] = "dincae"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return f"{spec.name}-dincae-{digest}"


def validation_nll(model, loader: DataLoader, seed: int, device) -> float:
    """The training loss on the validation split, with the same hidden points at every call."""
    return mean_batch_loss(model, loader, dincae_loss, seed, device)


@dataclass
class _Run:
    spec: ExperimentSpec
    rank: int
    device: torch.device
    loader: DataLoader
    val_loader: DataLoader | None
    net: torch.nn.Module
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    meta: dict[str, Any]


def _setup(config: dict[str, Any]) -> _Run:
    spec = parse_spec(config["spec"], "(train loop config)")
    method = DincaeMethod.model_validate(config["method"])
    training = spec.training
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()
    train_set = SplitDataset(config["store"], "train", cache_bytes=int(training.cache_mb * 2**20))
    loader = build_training_loader(train_set, training.batch_size, spec.seed, rank, world)
    loader = ray.train.torch.prepare_data_loader(loader, add_dist_sampler=False)
    val_loader = None
    if rank == 0:
        val_set = SplitDataset(config["store"], "val", limit=training.val_samples)
        val_loader = DataLoader(val_set, batch_size=training.batch_size)
    net = build_dincae(
        spec.backbone_of(method),
        channels=len(train_set.channels),
        frames=train_set.shape[0],
        seed=spec.seed,
    ).to(device)
    model = ray.train.torch.prepare_model(net)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr, betas=training.betas)
    meta = {"model": "dincae", **checkpoint_meta(train_set, config)}
    return _Run(spec, rank, device, loader, val_loader, net, model, optimizer, meta)


def _report(run: _Run, step: int, metrics: dict[str, float], logger: RunLogger | None) -> None:
    """Validation NLL (rank 0), a checkpoint when due, the MLflow curves, Ray Train's report."""
    training = run.spec.training
    save = step == training.steps or step % training.checkpoint_every == 0
    if run.rank == 0:
        seed = run.spec.seed + VAL_SEED_OFFSET
        metrics["val_nll"] = validation_nll(run.net, run.val_loader, seed, run.device)
    if logger:
        logger.metrics(metrics, step)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if run.rank == 0 and save:
            meta = {**run.meta, "step": step}
            save_checkpoint(tmp, model=run.net, optimizer=run.optimizer, meta=meta)
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({**metrics, "step": step}, checkpoint=ckpt)


def dincae_loop_per_worker(config: dict[str, Any]) -> None:
    """The Gaussian-likelihood training of one DINCAE-style baseline on this worker, from the
    newest of Ray Train's checkpoint and ``config["resume_from"]`` (or step 0)."""
    run = _setup(config)
    checkpoint = newest(ray.train.get_checkpoint(), found_checkpoint(config))
    step = restore(checkpoint, run.net, run.optimizer, run.device)
    training, seed = run.spec.training, run.spec.seed
    logger = RunLogger(config["tracking_uri"], config["run_id"]) if run.rank == 0 else None
    logger = logger if config.get("run_id") else None
    if logger and step > 0:
        logger.tag(TAG_RESUMED, str(step))
    g = torch.Generator(device=run.device)
    running, count, epoch = 0.0, 0, step // max(1, len(run.loader))
    run.model.train()
    while step < training.steps:
        if hasattr(run.loader, "sampler") and hasattr(run.loader.sampler, "set_epoch"):
            run.loader.sampler.set_epoch(epoch)
        for batch in run.loader:
            if step >= training.steps:
                break
            for group in run.optimizer.param_groups:
                group["lr"] = learning_rate(step, training)
            g.manual_seed(seed * 100_003 + run.rank * 1_009 + step)
            x, m = batch["x_obs"].to(run.device), batch["mask"].to(run.device)
            loss = dincae_loss(run.model, x, m, g)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if training.grad_clip:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), training.grad_clip)
            run.optimizer.step()
            step += 1
            running, count = running + loss.item(), count + 1
            if step % training.log_every and step != training.steps:
                continue
            metrics = {"train_nll": running / count, "lr": learning_rate(step - 1, training)}
            running, count = 0.0, 0
            _report(run, step, metrics, logger)
        epoch += 1


def train_dincae(
    spec: ExperimentSpec, method: DincaeMethod, *, store_url: str, tracking_uri: str,
    run_id: str | None,
) -> tuple[ray.train.Checkpoint, float]:  # fmt: skip
    """The final checkpoint of ``method``'s training and the seconds this call took: one
    ``TorchTrainer`` fit, or none when a finished checkpoint of the same weights is on disk."""
    t0 = time.perf_counter()
    root, name = storage_path(spec), dincae_run_name(spec, method)
    resume_from = None
    if "://" not in root:
        found = stored_checkpoints(Path(root), [name]).get(name)
        if found is not None and found[0] >= spec.training.steps:
            if run_id:
                RunLogger(tracking_uri, run_id).tag(TAG_RESUMED, str(found[0]))
            return found[1], time.perf_counter() - t0
        if (Path(root) / name).is_dir():
            repair_snapshot(Path(root) / name)
        resume_from = found[1].path if found else None
    scaling = scaling_config(spec)
    config = {
        "spec": spec.to_dict(),
        "method": method.model_dump(mode="json"),
        "store": store_url,
        "tracking_uri": tracking_uri,
        "run_id": run_id,
        "train_run": name,
        "resume_from": resume_from,
        "threads": max(1, int(scaling.resources_per_worker["CPU"])),
    }
    apply_fit_env()
    trainer = TorchTrainer(
        dincae_loop_per_worker,
        train_loop_config=config,
        scaling_config=scaling,
        run_config=run_config(spec, name, ray.train.CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    return result.checkpoint, time.perf_counter() - t0
