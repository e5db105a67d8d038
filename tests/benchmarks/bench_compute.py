"""Benchmark items 2 and 3: compute efficiency of the UNet training step against this machine's
GEMM peak, and the K-mask ensemble as one batch against a Python loop over the masks."""

from __future__ import annotations

from typing import Any

import torch
from bench_lib import (
    TrainStep,
    gemm_peak,
    interleaved,
    make_batch,
    make_model,
    row,
    timeit,
    top_ops,
)
from torch.utils.flop_counter import FlopCounterMode

from incdyn.models.denoiser import Denoiser
from incdyn.models.partition import Partition
from incdyn.models.samplers.single import ensemble_impute

EFFICIENCY_TARGET = 0.40  # of the GEMM peak, on CPU
ENSEMBLE_TARGET = 3.0  # one batch vs a loop over masks
PARTITION = Partition()  # spec default: pixel partition, context ratio 0.7, static


def compute_efficiency(*, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    """Counted FLOPs of a batch-8 training step (forward, backward) per second, over the GEMM
    peak measured before and after in this process (the higher of the two is the reference)."""
    out: dict[str, Any] = {"peak_before": gemm_peak()}
    shapes = [(16, 32)] if quick else [(16, 32), (100, 64)]
    steps: dict[str, Any] = {}
    for frames, grid in shapes:
        step = TrainStep(make_model(channels=1, frames=frames))
        x, mask = make_batch(batch=8, channels=1, frames=frames, grid=grid)
        step(x, mask)
        with FlopCounterMode(display=False) as counter:
            step(x, mask)
        flops = counter.get_total_flops()
        budget = (2.0 if quick else 6.0) * (1 if frames * grid * grid <= 16 * 32 * 32 else 2)
        t = timeit(lambda s=step, x=x, m=mask: s(x, m), repeat=3, warmup=0, budget_s=budget)
        steps[f"{frames}x{grid}x{grid}"] = {"gflop": flops / 1e9, "step_s": t,
                                            "_fn": lambda s=step, x=x, m=mask: s(x, m)}  # fmt: skip
    out["peak_after"] = gemm_peak()
    peak = max(out["peak_before"]["gflops_best"], out["peak_after"]["gflops_best"])
    out["peak_gflops"] = peak
    rows = [row("2", "float32 GEMM 2048² peak, 2 threads (best)", peak, "GFLOP/s",
                note=f"anchor 240; median {out['peak_after']['gflops_median']:.0f}")]  # fmt: skip
    for shape, s in steps.items():
        fn = s.pop("_fn")
        s["gflops"] = s["gflop"] / s["step_s"]["best"]
        s["efficiency"] = s["gflops"] / peak
        met = s["efficiency"] >= EFFICIENCY_TARGET
        note = ""
        if not met:  # where the time goes: the convolutions carry (nearly) all the FLOPs
            s["profile"] = top_ops(fn, n=40)
            conv = sum(o["share"] for o in s["profile"] if "conv" in o["op"])
            s["conv_share"] = conv
            note = f"convolutions {conv:.0%} of the op time; rest elementwise/copies"
            s["profile"] = s["profile"][:10]
        rows.append(row("2", f"train step {shape} b8: {s['gflop']:.1f} GFLOP in "
                        f"{s['step_s']['best']:.3f} s = {s['gflops']:.0f} GFLOP/s, / peak",
                        s["efficiency"], "ratio", target=f">= {EFFICIENCY_TARGET}",
                        met=met, note=note))  # fmt: skip
    out["steps"] = steps
    return rows, out


@torch.no_grad()
def loop_impute(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    partition: Partition,
    *,
    k: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's way: one network call per context mask (K sequential calls on B samples).

    Draws the same context masks and noise as ``ensemble_impute`` (same calls, same order), so
    that both return the same ensemble mean and spread up to float round-off.
    """
    schedule = denoiser.schedule
    b = x_obs.shape[0]
    ctx = partition.context(mask.repeat_interleave(k, dim=0), generator)
    x = torch.where(mask.unsqueeze(1), x_obs, torch.zeros_like(x_obs)).repeat_interleave(k, 0)
    tt = torch.full((b,), schedule.t_min)
    eps = torch.randn(x.shape, generator=generator)
    x_t = schedule.alpha(tt)[0] * x + schedule.sigma(tt)[0] * eps
    x_t, ctx = x_t.view(b, k, *x_obs.shape[1:]), ctx.view(b, k, *mask.shape[1:])
    preds = torch.stack([denoiser(x_t[:, j], ctx[:, j], tt) for j in range(k)], dim=1)
    observed = mask.unsqueeze(1).expand_as(x_obs)
    imputed = torch.where(observed, x_obs, preds.mean(dim=1))
    spread = torch.where(observed, 0.0, preds.std(dim=1, unbiased=False))
    return imputed, spread


def ensemble_batching(*, quick: bool, k: int = 10) -> tuple[list[dict], dict[str, Any]]:
    """``ensemble_impute`` (K masks of every sample in one network batch) vs ``loop_impute``."""
    rows, out = [], {}
    for b, frames, grid in ((8, 16, 32), (1, 16, 32)):
        model = make_model(channels=1, frames=frames).eval()
        x, mask = make_batch(batch=b, channels=1, frames=frames, grid=grid, seed=1)

        def batched(m=model, x=x, mask=mask):
            return ensemble_impute(
                m, x, mask, PARTITION, k=k, generator=torch.Generator().manual_seed(0)
            )

        def looped(m=model, x=x, mask=mask):
            return loop_impute(
                m, x, mask, PARTITION, k=k, generator=torch.Generator().manual_seed(0)
            )

        (ib, sb), (il, sl) = batched(), looped()
        diff = max((ib - il).abs().max().item(), (sb - sl).abs().max().item())
        scale = ib.abs().max().item()
        t = interleaved({"batched": batched, "loop": looped}, repeat=3,
                        budget_s=3.0 if quick else 8.0)  # fmt: skip
        speedup = t["loop"]["best"] / t["batched"]["best"]
        name = f"{b}x{frames}x{grid}x{grid} K={k}"
        out[name] = {"batched_s": t["batched"], "loop_s": t["loop"], "speedup": speedup,
                     "max_abs_diff": diff, "output_scale": scale}  # fmt: skip
        rows.append(row("3", f"ensemble B={b} {frames}x{grid}² K={k}: loop "
                        f"{t['loop']['best']:.3f} s / one batch {t['batched']['best']:.3f} s",
                        speedup, "x", target=f">= {ENSEMBLE_TARGET}",
                        met=speedup >= ENSEMBLE_TARGET,
                        note=f"same outputs: max |diff| {diff:.1e} (scale {scale:.1f})"))  # fmt: skip
        if speedup < ENSEMBLE_TARGET:
            out[name]["profile_batched"] = top_ops(batched, n=6)
            out[name]["profile_loop"] = top_ops(looped, n=6)
    return rows, out
