"""Shared helpers of the benchmark suite: timing, the GEMM peak, models, batches, peak memory.

Timings are best-of-N (the least disturbed run on a shared machine) with the median beside it;
ratios are always taken between figures measured in the same process run.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from incdyn.models.backbones.registry import build_denoiser
from incdyn.models.denoiser import Denoiser
from incdyn.models.objective import data_matching_loss
from incdyn.models.partition import Partition
from incdyn.platform.spec import ScheduleSpec, UNetSpec

HERE = Path(__file__).resolve().parent
GIB = 2**30


def row(item: str, figure: str, value: float | None, unit: str = "", *, target: str = "",
        met: bool | None = None, note: str = "") -> dict[str, Any]:  # fmt: skip
    """One line of the printed table (and of the JSON's ``rows``)."""
    return {"item": item, "figure": figure, "value": value, "unit": unit, "target": target,
            "met": met, "note": note}  # fmt: skip


def print_rows(out: dict[str, Any], path: str | None) -> None:
    """Print ``out["rows"]`` and the load average of a script run alone; write ``out`` to
    ``path`` (JSON) if given."""
    for r in out["rows"]:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        note = f"  [{r['note']}]" if r["note"] else ""
        print(f"{r['item']:>2} {r['value']:>10.3g} {r['unit']:<6} {r['target']:<8} {met:<4} "
              f"{r['figure']}{note}")  # fmt: skip
    load = [tuple(round(x, 1) for x in out[k]) for k in ("loadavg_start", "loadavg_end")]
    print(f"{out['elapsed_s']:.0f} s; load average (1, 5, 15 min) {load[0]} -> {load[1]}")
    if path:
        Path(path).write_text(json.dumps(out, indent=1, default=str))


def timeit(fn: Callable[[], Any], *, repeat: int, warmup: int = 1, budget_s: float = 0.0,
           max_runs: int = 30) -> dict[str, float]:  # fmt: skip
    """Seconds per call of ``fn``: ``best`` (min) and ``median``. At least ``repeat`` calls, then
    more while the calls so far took under ``budget_s`` (at most ``max_runs``): on a shared
    machine the best of many short runs is the least disturbed one."""
    return interleaved({"fn": fn}, repeat=repeat, warmup=warmup, budget_s=budget_s,
                       max_runs=max_runs)["fn"]  # fmt: skip


def interleaved(fns: dict[str, Callable[[], Any]], *, repeat: int, warmup: int = 1,
                budget_s: float = 0.0, max_runs: int = 30) -> dict[str, dict[str, float]]:  # fmt: skip
    """Time several callables in alternation (A, B, A, B, ...), so that a change of load on a
    shared machine hits all of them alike; ``{name: {"best", "median", "runs"}}``. Rounds
    continue past ``repeat`` while all rounds so far took under ``budget_s`` in total."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    spent, rounds = 0.0, 0
    while rounds < repeat or (spent < budget_s and rounds < max_runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            spent += times[name][-1]
        rounds += 1
    return {name: {"best": min(t), "median": statistics.median(t), "runs": len(t)}
            for name, t in times.items()}  # fmt: skip


def gemm_peak(n: int = 2048, threads: int = 2, repeat: int = 10,
              budget_s: float = 2.0) -> dict[str, float]:  # fmt: skip
    """GFLOP/s of an ``n × n`` float32 matmul with ``threads`` threads (best and median)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    t = timeit(lambda: torch.mm(a, b, out=out), repeat=repeat, warmup=2, budget_s=budget_s)
    torch.set_num_threads(before)
    flops = 2.0 * n**3
    return {"gflops_best": flops / t["best"] / 1e9, "gflops_median": flops / t["median"] / 1e9}


def default_backbone(**overrides: Any) -> dict[str, Any]:
    """incdyn's default backbone: the spec's ``UNetSpec()`` (UNet width 32, mults 1-2-2)."""
    return {**UNetSpec().model_dump(mode="json"), **overrides}


def make_model(*, channels: int, frames: int, backbone: dict | None = None, seed: int = 0,
               perturb: bool = True) -> Denoiser:  # fmt: skip
    """A denoiser with random weights; ``perturb`` opens the output gain (0 at initialisation,
    which would make every prediction exactly 0 and output comparisons trivial)."""
    torch.manual_seed(seed)
    schedule = ScheduleSpec().model_dump(mode="json")
    model = build_denoiser(backbone or default_backbone(), schedule, channels=channels,
                           frames=frames)  # fmt: skip
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return model


def make_batch(*, batch: int, channels: int, frames: int, grid: int, p: float = 0.2,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``x_obs`` ``(B, C, T, H, W)`` (0 where unobserved) and a static pixel mask ``(B, T, H, W)``
    with observed fraction ``p`` (the release's Navier–Stokes setting: 20 %)."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, 1, grid, grid, generator=g) < p).expand(-1, frames, -1, -1)
    mask = mask.contiguous()
    x = torch.randn(batch, channels, frames, grid, grid, generator=g)
    return x * mask.unsqueeze(1), mask


class TrainStep:
    """The training step of ``platform/train/worker.py``: loss, zero_grad, backward, clip, Adam."""

    def __init__(self, model: Denoiser, *, lr: float = 1e-3, clip: float | None = 1.0):
        self.model = model.train()
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.95, 0.999))
        self.clip = clip
        self.partition = Partition()  # spec default: pixel partition 0.7 / 0.7, static
        self.g = torch.Generator().manual_seed(0)

    def __call__(self, x: torch.Tensor, mask: torch.Tensor) -> float:
        loss = data_matching_loss(self.model, x, mask, self.partition, self.g)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        return loss.item()


def rss_bytes() -> int:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far: ``VmHWM`` of ``/proc/self/status``.

    Not ``getrusage``'s ``ru_maxrss`` alone: Linux carries the parent's peak across fork and
    exec into it, so a child of a large parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_json(script: str, args: list[str], *, timeout: float) -> dict[str, Any]:
    """Run ``tests/benchmarks/<script>`` in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, str(HERE / script), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def top_ops(fn: Callable[[], Any], *, n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` operators with the most self CPU time in one call of ``fn`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1),
             "share": round(e.self_cpu_time_total / total, 3), "calls": e.count}
            for e in events[:n]]  # fmt: skip
