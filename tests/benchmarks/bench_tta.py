"""Benchmark item 0 (the headline): time to accuracy, and where a run's wall time goes.

``incdyn run`` of a quick-start-like spec (Navier–Stokes 16×32×32, 20 % pixel masks, the quick
start's backbone and learning rate; fewer samples and steps so that the item fits the suite) in
a fresh process with its own local Ray, then ``incdyn sweep`` of 4 ratio trials on the same
store. Every figure is read back from the MLflow records the commands wrote: the checkpoints'
``ckpt_val_mse`` curve (``training.val_imputation``: the single-step ensemble on the validation
samples at each checkpoint, with its wall-clock timestamp) and each run's ``time_<phase>_s``.

Time to accuracy: from the command's start to the timestamp of the first checkpoint whose
validation MSE is within 5 % of the run's last checkpoint's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from bench_lib import row
from mlflow.tracking import MlflowClient

from incdyn.platform.timings import is_timing
from incdyn.platform.tracking import ROLE_EXPERIMENT, ROLE_METHOD, ROLE_TRIAL, TAG_ROLE

WITHIN = 0.05  # a checkpoint is "accurate" within 5 % of the run's final validation MSE
CURVE = "ckpt_val_mse"
VENV_BIN = Path(sys.executable).parent


def tta_spec(workdir: Path, *, steps: int) -> dict[str, Any]:
    """The quick start (experiments/quickstart.yaml) for one diffusion method, shrunk."""
    every = max(1, steps // 8)
    return {
        "name": "bench-tta",
        "data": {"source": "navier_stokes", "preset": "quickstart",
                 "store": str(workdir / "tta.zarr"), "n_train": 128, "n_val": 16, "n_test": 16,
                 "chunk": 32, "observation": {"kind": "pixel", "p": 0.2, "static": True}},
        "methods": [{"name": "ours", "kind": "diffusion", "ensemble": 10,
                     "partition": {"kind": "pixel", "context_ratio": 0.7, "query_ratio": 0.7}}],
        "backbone": {"name": "unet", "width": 32, "mults": [1, 2, 2], "blocks_per_level": 1,
                     "padding_mode": "circular"},
        "training": {"steps": steps, "batch_size": 8, "lr": 0.01, "lr_schedule": "cosine",
                     "warmup_steps": every, "log_every": every, "checkpoint_every": every,
                     "val_samples": 8, "val_imputation": True},
        "evaluation": {"batch_size": 8, "verification": {"enabled": False}},
        "ray": {"num_workers": 1, "storage_path": str(workdir / "runs")},
        "mlflow": {"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
    }  # fmt: skip


def _command(args: list[str], workdir: Path) -> tuple[float, float]:
    """Run ``incdyn ARGS`` in ``workdir``; (epoch seconds at its start, its wall seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    started, t0 = time.time(), time.perf_counter()
    done = subprocess.run([str(VENV_BIN / "incdyn"), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"incdyn {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return started, time.perf_counter() - t0


def time_to_accuracy(client: MlflowClient, run_id: str, started: float) -> dict[str, Any]:
    """Seconds from ``started`` to the first checkpoint within ``WITHIN`` of the final value."""
    curve = sorted(client.get_metric_history(run_id, CURVE), key=lambda m: m.step)
    if not curve:
        raise RuntimeError(f"run {run_id} logged no {CURVE} curve")
    final = curve[-1].value
    first = next(m for m in curve if m.value <= final * (1 + WITHIN))
    return {"tta_s": first.timestamp / 1000 - started, "step": first.step,
            "final_step": curve[-1].step, "final": final, "value": first.value,
            "last_checkpoint_s": curve[-1].timestamp / 1000 - started,
            "curve": [(m.step, m.value, m.timestamp / 1000 - started) for m in curve]}  # fmt: skip


def phases(run) -> dict[str, float]:
    return {k[5:-2]: v for k, v in run.data.metrics.items() if is_timing(k)}


def _runs(client: MlflowClient, role: str):
    exp = client.get_experiment_by_name("bench-tta")
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get(TAG_ROLE) == role]


def _breakdown_rows(label: str, p: dict[str, float]) -> list[dict]:
    total = p.pop("total")
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(p.items(), key=lambda kv: -kv[1]))
    return [row("0", f"{label}: wall time of the MLflow run, by phase (s)", total, "s",
                note=parts)]  # fmt: skip


def run_and_sweep(workdir: Path, *, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    steps = 64 if quick else 120
    spec_file = workdir / "tta.yaml"
    spec_file.write_text(yaml.safe_dump(tta_spec(workdir, steps=steps)))
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    out: dict[str, Any] = {"steps": steps}

    started, wall = _command(["run", str(spec_file)], workdir)
    child = _runs(client, ROLE_METHOD)[0]
    parent = _runs(client, ROLE_EXPERIMENT)[0]
    tta = out["run"] = {**time_to_accuracy(client, child.info.run_id, started), "wall_s": wall,
                        "phases": phases(child), "parent_phases": phases(parent)}  # fmt: skip
    p = out["run"]["parent_phases"]
    rows = [
        row("0", f"incdyn run (quick-start-like, {steps} steps, K=10): time to a checkpoint "
            f"within {WITHIN:.0%} of the final val MSE", tta["tta_s"], "s",
            note=f"step {tta['step']} of {tta['final_step']}; last checkpoint at "
            f"{tta['last_checkpoint_s']:.0f} s, command {wall:.0f} s; data {p['data']:.1f} s, "
            f"Ray start {p['ray_start']:.1f} s"),
        *_breakdown_rows("  incdyn run, method ours", phases(child)),
    ]  # fmt: skip

    started, wall = _command(["sweep", str(spec_file), "--context-ratios", "0.5,0.9",
                              "--query-ratios", "0.5,0.9"], workdir)  # fmt: skip
    trials = [r for r in _runs(client, ROLE_TRIAL) if r.info.start_time / 1000 >= started - 1]
    per = [time_to_accuracy(client, r.info.run_id, started) for r in trials]
    best = min(range(len(per)), key=lambda i: per[i]["final"])
    out["sweep"] = {"wall_s": wall, "trials": per, "best": best,
                    "phases": [phases(r) for r in trials]}  # fmt: skip
    rows += [
        row("0", f"incdyn sweep ({len(trials)} ratio trials): time to the best trial's checkpoint "
            f"within {WITHIN:.0%} of its final val MSE", per[best]["tta_s"], "s",
            note=f"all trials there at {max(t['tta_s'] for t in per):.0f} s; command "
            f"{wall:.0f} s (store reused)"),
        *_breakdown_rows("  incdyn sweep, best trial", phases(trials[best])),
    ]  # fmt: skip
    return rows, out
