"""The training loop that every Ray Train worker runs (Alg. 1).

``train_loop_per_worker(config)`` is handed to ``TorchTrainer``: each worker reads its own shard
of the training split (``prepare_data_loader`` adds the distributed sampler), the denoiser is
wrapped in DDP by ``prepare_model`` when there is more than one worker, and rank 0 writes
checkpoints (state_dict + resolved spec) and logs the curves to the method's MLflow run.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from incdyn.datasets.chunk_sampler import ChunkShuffleSampler
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.backbones.registry import build_denoiser
from incdyn.models.objective import data_matching_loss
from incdyn.models.partition import Partition
from incdyn.platform.checkpoint import read_meta, save_checkpoint
from incdyn.platform.tracking import TAG_RESUMED, RunLogger
from incdyn.platform.train.probe import WorkerProbe


def partition_for(method: dict[str, Any], observation: dict[str, Any]) -> Partition:
    """The method's partition strategy, with the structure of the observation family."""
    p = method["partition"]
    return Partition(
        kind=p["kind"],
        context_ratio=p["context_ratio"],
        query_ratio=p["query_ratio"],
        blocks=observation["blocks"],
        drop_blocks=p["drop_blocks"],
        query_all=p["query_all"],
        static=observation["static"],
        radius=observation.get("radius", 3.0),  # .get: specs saved before station masks
        drop_stations=p.get("drop_stations", 1),
    )


def learning_rate(step: int, training: dict[str, Any]) -> float:
    """Linear warm-up, then constant or cosine decay to 0 at the last step."""
    lr, warm, total = training["lr"], training["warmup_steps"], training["steps"]
    if warm and step < warm:
        return lr * (step + 1) / warm
    if training["lr_schedule"] == "cosine":
        progress = (step - warm) / max(1, total - warm)
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return lr


def build_training_loader(
    train_set: SplitDataset, batch_size: int, seed: int, rank: int, world: int
) -> DataLoader:
    """This worker's shuffled batches of the training split, the order a function of ``seed``.

    When the split fits in the dataset's chunk cache: a plain shuffle, sharded over the workers
    by torch's ``DistributedSampler`` when there are several (built here rather than by Ray
    Train's ``prepare_data_loader``, whose sampler always uses seed 0). When it does not, a
    plain shuffle would decode a whole chunk for nearly every sample (tests/benchmarks item 6),
    so the :class:`ChunkShuffleSampler` shards and shuffles by windows of the chunks the cache
    holds. Either way the train loop calls ``set_epoch`` per epoch where the sampler has it.
    """
    if train_set.chunks > train_set.cache_chunks:
        sampler = ChunkShuffleSampler(
            len(train_set),
            train_set.chunk,
            window=train_set.cache_chunks,
            num_replicas=world,
            rank=rank,
            seed=seed,
        )
    elif world > 1:
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, seed=seed)
    else:
        sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(seed))
    return DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True)


@torch.no_grad()
def validation_loss(model, loader: DataLoader, partition: Partition, seed: int, device) -> float:
    """The training objective on the validation split's observed data, with fixed randomness.

    Runs on rank 0 alone, so ``model`` must be the bare denoiser: a DDP forward would wait for
    a buffer broadcast from the other ranks.
    """
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    total, n = 0.0, 0
    for batch in loader:
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        total += float(data_matching_loss(model, x, m, partition, g)) * x.shape[0]
        n += x.shape[0]
    model.train()
    return total / max(n, 1)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    spec, method = config["spec"], config["method"]
    training = spec["training"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()
    partition = partition_for(method, spec["data"]["observation"])

    # 1. Data: this worker's shard of the training split (the distributed sampler splits it).
    train_set = SplitDataset(
        config["store"],
        "train",
        cache_bytes=int(training["cache_mb"] * 2**20),
    )
    loader = build_training_loader(train_set, training["batch_size"], spec["seed"], rank, world)
    loader = ray.train.torch.prepare_data_loader(loader, add_dist_sampler=False)
    val_loader = None
    if rank == 0:
        val_set = SplitDataset(config["store"], "val", limit=training["val_samples"])
        val_loader = DataLoader(val_set, batch_size=training["batch_size"])

    # 2. Model and optimiser; DDP when world > 1.
    backbone = method.get("backbone") or spec["backbone"]  # a method may bring its own (Table 5)
    denoiser = build_denoiser(
        backbone,
        spec["schedule"],
        channels=len(train_set.channels),
        frames=train_set.shape[0],
        seed=spec["seed"],  # same seed, same initial weights (DDP then broadcasts rank 0's)
    )
    if training["compile"]:  # in place: parameter names, hence checkpoints, stay the same
        denoiser.backbone.compile()
    model = ray.train.torch.prepare_model(denoiser)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=training["lr"], betas=tuple(training["betas"])
    )

    # 3. Resume from the latest checkpoint after a failure or a rerun of the same spec.
    step = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            denoiser.load_state_dict(
                torch.load(Path(d) / "model.pt", map_location=device, weights_only=True)
            )
            optimizer.load_state_dict(
                torch.load(Path(d) / "optimizer.pt", map_location=device, weights_only=True)
            )
            step = int(read_meta(d)["step"])
    logger = (
        RunLogger(config["tracking_uri"], config["run_id"])
        if rank == 0 and config.get("run_id")
        else None
    )
    if logger and checkpoint:
        logger.tag(TAG_RESUMED, str(step))
    # Diagnostics for tests: per-worker node, sample indices and parameter checksum (probe.py).
    probe = (
        WorkerProbe(config["probe_dir"], rank=rank, world=world, start_step=step)
        if config.get("probe_dir")
        else None
    )
    bf16 = training["precision"] == "bf16"  # autocast forward and loss; weights stay fp32

    # 4. Loop over optimiser steps; per-(seed, rank, step) randomness for partitions and noise.
    g = torch.Generator(device=device).manual_seed(spec["seed"] * 100_003 + rank * 1_009 + step)
    meta = {
        "normalization": {
            "mean": train_set.mean.ravel().tolist(),
            "std": train_set.std.ravel().tolist(),
        },
        "method": method,
        "backbone": backbone,
        "channels": list(train_set.channels),
        "frames": train_set.shape[0],
        "grid": list(train_set.shape[2:]),
        "spec": spec,
        "store": config["store"],
    }
    running, count, t0, epoch = 0.0, 0, time.perf_counter(), step // max(1, len(loader))
    model.train()
    while step < training["steps"]:
        if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            if step >= training["steps"]:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, training)
            if probe:
                probe.saw(epoch, batch["index"])
            x, m = batch["x_obs"].to(device), batch["mask"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = data_matching_loss(model, x, m, partition, g)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if training["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), training["grad_clip"])
            optimizer.step()
            step += 1
            running += loss.item()
            count += 1
            last = step == training["steps"]
            if step % training["log_every"] and not last:
                continue
            metrics = {
                "step": step,
                "train_loss": running / count,
                "lr": learning_rate(step - 1, training),
                "steps_per_s": count / (time.perf_counter() - t0),
                "epoch": epoch,
            }
            running, count, t0 = 0.0, 0, time.perf_counter()
            if rank == 0:
                metrics["val_loss"] = validation_loss(
                    denoiser, val_loader, partition, spec["seed"], device
                )
            save = last or step % training["checkpoint_every"] == 0
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = None
                if rank == 0 and save:
                    save_checkpoint(
                        tmp, model=denoiser, optimizer=optimizer, meta={**meta, "step": step}
                    )
                    ckpt = ray.train.Checkpoint.from_directory(tmp)
                if logger:
                    logger.metrics({k: v for k, v in metrics.items() if k != "step"}, step)
                if probe:
                    probe.report(step, metrics["train_loss"], denoiser)
                ray.train.report(metrics, checkpoint=ckpt)
        epoch += 1
    if world > 1:
        torch.distributed.barrier()
