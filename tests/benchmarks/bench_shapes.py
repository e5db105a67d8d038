"""Benchmark items 4 and 7: the default backbone at the release's shapes, and how time and peak
memory of a training step and of the K = 10 ensemble grow with grid and frames.

Every (phase, shape) runs in a fresh interpreter, so that its peak resident memory
(``ru_maxrss``) belongs to that phase alone:

    python tests/benchmarks/bench_shapes.py --phase train --frames 100 --grid 64
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from bench_lib import (
    GIB,
    TrainStep,
    gemm_peak,
    make_batch,
    make_model,
    peak_rss_bytes,
    row,
    rss_bytes,
    run_json,
    timeit,
)

from incdyn.models.partition import Partition
from incdyn.models.samplers.single import ensemble_impute

# The paper's release on this kind of machine (measured once with the release's code), batch 8:
# (frames, grid) -> (training step s, K = 10 ensemble s); None: does not fit in 24 GiB.
RELEASE = {(16, 32): (4.2, 24.0), (100, 64): (None, 1309.0)}
SPEEDUP_TARGET = 10.0  # at 16×32×32
MEMORY_LIMIT_GIB = 24.0  # batch-8 training step at 100×64×64
GRID_POINTS = [(16, 32), (16, 64), (16, 128)]  # (frames, grid)
FRAME_POINTS = [(16, 64), (64, 64), (100, 64)]


def measure(phase: str, *, frames: int, grid: int, batch: int, k: int, repeat: int,
            budget_s: float) -> dict:  # fmt: skip
    """Time one phase (``train``: a training step; ``ensemble``: K-mask imputation of ``batch``
    samples) of the default backbone; peak and starting resident memory of this process."""
    torch.set_num_threads(2)
    model = make_model(channels=1, frames=frames)
    x, mask = make_batch(batch=batch, channels=1, frames=frames, grid=grid)
    if phase == "train":
        step = TrainStep(model)
        fn = lambda: step(x, mask)  # noqa: E731
    else:
        model.eval()
        part = Partition()
        fn = lambda: ensemble_impute(  # noqa: E731
            model, x, mask, part, k=k, generator=torch.Generator().manual_seed(0)
        )
    base = rss_bytes()
    before = gemm_peak(1024, repeat=3, budget_s=0.3)["gflops_best"]
    t = timeit(fn, repeat=repeat, warmup=1, budget_s=budget_s)
    after = gemm_peak(1024, repeat=3, budget_s=0.3)["gflops_best"]
    params = sum(p.numel() for p in model.parameters())
    return {"phase": phase, "frames": frames, "grid": grid, "batch": batch, "k": k,
            "seconds": t, "peak_rss_gib": peak_rss_bytes() / GIB, "base_rss_gib": base / GIB,
            "params": params, "gemm_check_gflops": min(before, after)}  # fmt: skip


def _point(phase: str, frames: int, grid: int, *, quick: bool) -> dict:
    repeat, budget = 1, (2.0 if quick else 4.0)
    args = ["--phase", phase, "--frames", str(frames), "--grid", str(grid), "--repeat",
            str(repeat), "--budget-s", str(budget)]  # fmt: skip
    return run_json("bench_shapes.py", args, timeout=600)


def shapes(*, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    points = sorted(set(GRID_POINTS + FRAME_POINTS))
    if quick:
        points = [(16, 32), (16, 64), (100, 64)]
    res = {p: {ph: _point(ph, *p, quick=quick) for ph in ("train", "ensemble")} for p in points}
    # A phase whose GEMM check (just before and after it) ran under half the best one was
    # disturbed by other work on the machine: measure it once more and keep the faster run
    # (the 3 most disturbed phases at most, to bound the time).
    best_gemm = max(r["gemm_check_gflops"] for p in res.values() for r in p.values())
    disturbed = sorted(
        (r["gemm_check_gflops"], p, ph)
        for p, phases in res.items()
        for ph, r in phases.items()
        if r["gemm_check_gflops"] < 0.5 * best_gemm
    )
    for _, p, ph in disturbed[:3]:
        again = _point(ph, *p, quick=quick)
        again["retried"] = True
        if again["seconds"]["best"] < res[p][ph]["seconds"]["best"]:
            res[p][ph] = again
    out: dict[str, Any] = {f"{f}x{g}x{g}": r for (f, g), r in res.items()}
    rows = []
    # Item 4: against the release.
    t16, e16 = (res[(16, 32)][ph]["seconds"]["best"] for ph in ("train", "ensemble"))
    cases = (("training step", t16, 4.2, 0.37), ("K=10 ensemble", e16, 24.0, 1.6))
    for label, ours, theirs, plain in cases:
        speedup = theirs / ours
        rows.append(row("4", f"16x32² b8 {label}: release {theirs} s / incdyn {ours:.3f} s",
                        speedup, "x", target=f">= {SPEEDUP_TARGET}",
                        met=speedup >= SPEEDUP_TARGET,
                        note=f"plain 2-D UNet anchor: {plain} s"))  # fmt: skip
    big = res[(100, 64)]
    t100, e100 = big["train"]["seconds"]["best"], big["ensemble"]["seconds"]["best"]
    rows.append(row("4", f"100x64² b8 K=10 ensemble: release 1309 s / incdyn {e100:.2f} s",
                    1309.0 / e100, "x", note="plain 2-D UNet anchor: 8.5 s"))  # fmt: skip
    peak = big["train"]["peak_rss_gib"]
    rows.append(row("4", f"100x64² b8 training step {t100:.2f} s (release: no fit in 24 GiB); "
                    "peak RSS", peak, "GiB", target=f"< {MEMORY_LIMIT_GIB}",
                    met=peak < MEMORY_LIMIT_GIB, note="plain 2-D UNet anchor: 1.6 s"))  # fmt: skip
    # Item 7: growth with size, relative to the smallest point.
    ref = res[points[0]]
    for f, g in points:
        for ph in ("train", "ensemble"):
            r = res[(f, g)][ph]
            rel = r["seconds"]["best"] / ref[ph]["seconds"]["best"]
            work = (f * g * g) / (points[0][0] * points[0][1] ** 2)
            rows.append(row("7", f"{ph:<8} {f:>3}x{g:>3}²: {r['seconds']['best']:.3f} s "
                            f"({rel:.1f}x for {work:.0f}x points), peak RSS",
                            r["peak_rss_gib"], "GiB",
                            note=f"start {r['base_rss_gib']:.2f} GiB; GEMM check "
                            f"{r['gemm_check_gflops'] / best_gemm:.0%} of best"))  # fmt: skip
    return rows, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", choices=["train", "ensemble"], required=True)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--grid", type=int, required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--k", type=int, default=10, help="ensemble size")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls at least")
    ap.add_argument("--budget-s", type=float, default=6.0, help="more calls while under this")
    a = ap.parse_args()
    r = measure(a.phase, frames=a.frames, grid=a.grid, batch=a.batch, k=a.k, repeat=a.repeat,
                budget_s=a.budget_s)  # fmt: skip
    print(json.dumps(r))


if __name__ == "__main__":
    main()
