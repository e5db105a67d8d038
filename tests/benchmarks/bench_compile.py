"""Benchmark item 9 (alone, not in ``run_all.py``): ``training.compile`` with a persistent
compile cache, as the trainings of one experiment or sweep share it.

Two fresh processes compile the same batch-8 training step of incdyn's default backbone at
16×32×32 (``denoiser.backbone.compile()``, as ``platform/train/worker.py`` does) into one
Inductor cache directory: the first with the cache empty (a first run), the second reading it
(every later run). Each process times its first compiled step (the compilation, or reading it
from the cache, and one step), then the compiled and the eager step in alternation, and the
GEMM peak before and after. The figures: both first steps, the compiled step's share of the GEMM
peak (target ≥ 40 %), and the steps after which compiling has paid for itself, against a
500-step training.

    .venv/bin/python tests/benchmarks/bench_compile.py --out /tmp/compile.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import torch
from bench_lib import (
    TrainStep,
    gemm_peak,
    interleaved,
    make_batch,
    make_model,
    print_rows,
    row,
    run_json,
)
from torch.utils.flop_counter import FlopCounterMode

EFFICIENCY_TARGET = 0.40  # of the GEMM peak, as item 2
TRAINING_STEPS = 500  # the quick start's training: compiling must pay back within it
FRAMES, GRID, BATCH = 16, 32, 8


def child() -> dict[str, Any]:
    """One run: first compiled step, then eager and compiled steps interleaved (best of N)."""
    torch.set_num_threads(2)
    peak_before = gemm_peak()
    x, mask = make_batch(batch=BATCH, channels=1, frames=FRAMES, grid=GRID)
    eager = TrainStep(make_model(channels=1, frames=FRAMES))
    model = make_model(channels=1, frames=FRAMES)
    model.backbone.compile()
    compiled = TrainStep(model)
    t0 = time.perf_counter()
    compiled(x, mask)
    first = time.perf_counter() - t0
    with FlopCounterMode(display=False) as counter:
        eager(x, mask)
    t = interleaved(
        {"eager": lambda: eager(x, mask), "compiled": lambda: compiled(x, mask)},
        repeat=5,
        warmup=1,
        budget_s=20.0,
    )
    peak = max(peak_before["gflops_best"], gemm_peak()["gflops_best"])
    return {
        "first_step_s": first,
        "eager_s": t["eager"],
        "compiled_s": t["compiled"],
        "gflop": counter.get_total_flops() / 1e9,
        "peak_gflops": peak,
    }


def compile_rows(out: dict[str, Any]) -> list[dict]:
    cold, warm = out["cold"], out["warm"]
    rows = [
        row("9", "first compiled step, empty cache (compiles)", cold["first_step_s"], "s"),
        row(
            "9",
            "first compiled step, cache of the first run (a second run's compile)",
            warm["first_step_s"],
            "s",
            note=f"{warm['first_step_s'] / cold['first_step_s']:.2f} of the empty cache's",
        ),
    ]
    for name, run in (("first", cold), ("second", warm)):
        eager, step = run["eager_s"]["best"], run["compiled_s"]["best"]
        eff = run["gflop"] / step / run["peak_gflops"]
        rows.append(
            row(
                "9",
                f"{name} run: compiled step {step * 1e3:.0f} ms vs eager {eager * 1e3:.0f} ms "
                f"({run['gflop']:.1f} GFLOP), / GEMM peak {run['peak_gflops']:.0f} GFLOP/s",
                eff,
                "ratio",
                target=f">= {EFFICIENCY_TARGET}",
                met=eff >= EFFICIENCY_TARGET,
                note=f"eager {run['gflop'] / eager / run['peak_gflops']:.2f}",
            )
        )
        saved = eager - step
        payback = run["first_step_s"] / saved if saved > 0 else float("inf")
        rows.append(
            row(
                "9",
                f"{name} run: steps until compiling pays back (first step / time saved per step)",
                payback,
                "steps",
                target=f"<= {TRAINING_STEPS}",
                met=payback <= TRAINING_STEPS,
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write every figure here (JSON)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # the cache directory comes in $TORCHINDUCTOR_CACHE_DIR
        print(json.dumps(child()))
        return
    start = time.perf_counter()
    out: dict[str, Any] = {"loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="incdyn-compile-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # the children inherit it
        for name in ("cold", "warm"):
            out[name] = run_json("bench_compile.py", ["--child"], timeout=1800)
    out["loadavg_end"] = os.getloadavg()
    out["elapsed_s"] = time.perf_counter() - start
    out["rows"] = compile_rows(out)
    print_rows(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
