"""Benchmark item 1: the training step through Ray Train (1 worker) vs a bare PyTorch loop.

Both run ``platform/train/worker.py``'s step (same store, ``SplitDataset`` + ``DataLoader``,
model, batch, partition, Adam, gradient clipping) for the same number of steps. In the worker,
``steps_per_s`` is the loop's own figure, reported every ``WINDOW`` steps (a Train callback
records every report); a window also pays the previous report (a 1-sample validation and the
``ray.train.report`` barrier). The bare loop is timed in the same windows, once before and once
after the Ray Train run, in this process. On a shared machine the best window of each is the
least disturbed one; the mean over the whole run is reported beside it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from bench_lib import row
from torch.utils.data import DataLoader

from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.backbones.registry import build_denoiser
from incdyn.models.objective import data_matching_loss
from incdyn.models.partition import partition_for
from incdyn.platform.data_prep import ensure_data
from incdyn.platform.spec import ExperimentSpec, parse_spec
from incdyn.platform.train.driver import train_method
from incdyn.platform.train.lr_schedule import learning_rate

RAY_TARGET = 0.95  # Ray Train steps/s over bare steps/s
WINDOW = 8  # steps per report: one epoch of the 64-sample store at batch 8


def bench_spec(workdir: Path, *, steps: int) -> ExperimentSpec:
    """Navier–Stokes quickstart (16 frames × 32×32, 20 % pixel masks), the default backbone,
    batch 8, one Ray Train worker; a report every ``WINDOW`` steps, a checkpoint at the end."""
    return parse_spec({
        "name": "bench-train",
        "data": {"preset": "quickstart", "store": str(workdir / "ns16x32.zarr"), "n_train": 64,
                 "n_val": 8, "n_test": 8, "chunk": 16, "observation": {"p": 0.2}},
        "methods": [{"name": "ours"}],
        "training": {"steps": steps, "batch_size": 8, "log_every": WINDOW,
                     "checkpoint_every": steps, "val_samples": 1},
        "ray": {"num_workers": 1, "storage_path": str(workdir / "runs")},
    })  # fmt: skip


def report_recorder(path: Path):
    """A Train callback (run in Ray Train's controller) appending rank 0's metrics of every
    report to ``path`` as JSON lines. Built in a closure so that Ray ships it by value."""
    from ray.train import UserCallback

    class RecordReports(UserCallback):
        def after_report(self, run_context, metrics, checkpoint) -> None:
            with open(path, "a") as f:
                f.write(json.dumps(metrics[0]) + "\n")

    return RecordReports()


def bare_loop(spec: ExperimentSpec, url: str, *, threads: int) -> dict[str, Any]:
    """The worker's loop without Ray: steps/s per window of ``WINDOW`` steps and over the whole
    loop, and the wall time from data set and model construction to the last step."""
    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    training = spec.training
    partition = partition_for(spec.methods[0].partition, spec.data.observation)
    train_set = SplitDataset(url, "train")
    loader = DataLoader(train_set, batch_size=training.batch_size, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(spec.seed))  # fmt: skip
    model = build_denoiser(spec.backbone, spec.schedule,
                           channels=len(train_set.channels), frames=train_set.shape[0])  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=training.lr, betas=training.betas)
    g = torch.Generator().manual_seed(spec.seed * 100_003)
    step, t0 = 0, time.perf_counter()
    windows, tw = [], t0
    model.train()
    while step < training.steps:
        for batch in loader:
            if step >= training.steps:
                break
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, training)
            loss = data_matching_loss(model, batch["x_obs"], batch["mask"], partition, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
            opt.step()
            loss.item()
            step += 1
            if step % WINDOW == 0:
                windows.append(WINDOW / (time.perf_counter() - tw))
                tw = time.perf_counter()
    end = time.perf_counter()
    return {"steps_per_s": step / (end - t0), "windows": windows, "wall_s": end - t_start}


def build_bench_store(workdir: Path, *, quick: bool) -> tuple[ExperimentSpec, str]:
    """The spec of item 1 and its store (written by Ray tasks; needs a running Ray)."""
    spec = bench_spec(workdir, steps=(2 if quick else 4) * WINDOW)
    return spec, ensure_data(spec, progress=False)


def ray_train_vs_bare(spec: ExperimentSpec, url: str) -> tuple[list[dict], dict[str, Any]]:
    """Needs a running Ray instance with 2 CPUs (one worker gets both, and 2 torch threads)."""
    steps = spec.training.steps
    reports = Path(spec.ray.storage_path).parent / "reports.jsonl"
    bare = [bare_loop(spec, url, threads=2)]
    t0 = time.perf_counter()
    result = train_method(spec, spec.methods[0], store_url=url, tracking_uri="", run_id=None,
                          callbacks=[report_recorder(reports)])  # fmt: skip
    fit_s = time.perf_counter() - t0
    bare.append(bare_loop(spec, url, threads=2))
    if result.error or not result.metrics:
        raise RuntimeError(f"Ray Train run failed: {result.error}")
    windows = [json.loads(line)["steps_per_s"] for line in reports.read_text().splitlines()]
    worker_mean = steps / sum(WINDOW / w for w in windows)
    bare_windows = [w for b in bare for w in b["windows"]]
    bare_mean = sum(b["steps_per_s"] for b in bare) / len(bare)
    ratio_best = max(windows) / max(bare_windows)
    ratio_mean = worker_mean / bare_mean
    bare_wall = sum(b["wall_s"] for b in bare) / len(bare)
    e2e = (steps / fit_s) / (steps / bare_wall)
    overhead = fit_s - steps / worker_mean  # Ray Train's fixed cost: start, placement, checkpoint
    steps_95 = 19.0 * max(overhead, 0.0) * worker_mean  # steps at which it is 5 % of the run
    out = {"steps": steps, "window": WINDOW, "bare": bare, "ray_windows_steps_per_s": windows,
           "ray_mean_steps_per_s": worker_mean, "ray_fit_wall_s": fit_s,
           "ratio_best_window": ratio_best, "ratio_mean": ratio_mean, "ratio_end_to_end": e2e,
           "ray_fixed_overhead_s": overhead, "steps_for_95pct_end_to_end": steps_95}  # fmt: skip
    rows = [
        row("1", f"bare loop steps/s, best {WINDOW}-step window (mean over 2 runs "
            f"{bare_mean:.2f})", max(bare_windows), "step/s"),
        row("1", f"Ray Train worker steps/s, best window (mean {worker_mean:.2f})",
            max(windows), "step/s"),
        row("1", "Ray Train / bare, in the worker, best windows", ratio_best, "ratio",
            target=f">= {RAY_TARGET}", met=ratio_best >= RAY_TARGET,
            note=f"means: {ratio_mean:.2f}"),
        row("1", f"Ray Train / bare, end to end ({steps} steps: fit() {fit_s:.1f} s vs "
            f"{bare_wall:.1f} s)", e2e, "ratio",
            note=f"fixed Ray cost {overhead:.1f} s: 95 % from ~{steps_95:.0f} steps"),
    ]  # fmt: skip
    return rows, out
