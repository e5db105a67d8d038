"""Benchmark item 8: the K = 10 ensemble's cost against the number of grid points, with the
network batch chunked by grid points (``max_points``: rows × H × W per forward, the default
``evaluation.max_network_points``) against fixed row counts only (``max_batch`` = 256 rows, the
former behaviour, under which 8 samples × K = 10 are one forward at every grid).

Everything is measured in one process, interleaved (A, B, A, B, ...), best of N, 2 threads:

- a chunk scan: the seconds per row-point of the 16×128² ensemble (B = 2, K = 10: 20 rows) for
  several point budgets, from one row per forward to all 20 rows in one;
- the ensemble's growth from 16×32² to 16×128² (16× the points; target ≤ 17×) with either
  chunking, and the 16×128² speed-up of the point budget over the fixed rows;
- the B = 1 batched / looped speed-up of item 3 with either chunking (at 16×32² the 10 rows are
  under the budget, so both run one forward).
"""

from __future__ import annotations

from typing import Any

import torch
from bench_compute import PARTITION, loop_impute
from bench_lib import interleaved, make_batch, make_model, row

from incdyn.models.samplers.forward import MAX_NETWORK_POINTS
from incdyn.models.samplers.single import ensemble_impute

LINEAR_TARGET = 17.0  # 16×128² / 16×32² ensemble cost, for 16× the points
ROWS_ONLY = 2**62  # a point budget that never binds: chunks of max_batch rows only
K = 10
SMALL_CALLS = 8  # 16×32² calls per round of the growth measurement


def _ensemble(model, x, mask, max_points: int):
    def fn():
        return ensemble_impute(model, x, mask, PARTITION, k=K, max_points=max_points,
                               generator=torch.Generator().manual_seed(0))  # fmt: skip

    return fn


def chunk_scan(model, *, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    """Seconds per row-point of the 16×128² ensemble of 2 samples for several point budgets."""
    grid = 128
    x, mask = make_batch(batch=2, channels=1, frames=16, grid=grid, seed=1)
    budgets = {rows: rows * grid * grid for rows in ((1, 4, 20) if quick else (1, 2, 4, 8, 20))}
    t = interleaved({rows: _ensemble(model, x, mask, b) for rows, b in budgets.items()},
                    repeat=2 if quick else 3, budget_s=0.0)  # fmt: skip
    per_point = {rows: t[rows]["best"] / (2 * K * grid * grid) * 1e6 for rows in budgets}
    best = min(per_point, key=per_point.get)
    scan = ", ".join(f"{r} rows {us:.2f}" for r, us in per_point.items())
    note = f"µs per row-point by rows per forward: {scan}"
    rows = [row("8", f"16x128² B=2 K={K}: best chunk {best} rows ({budgets[best]} points) vs "
                "all 20 rows in one forward", per_point[20] / per_point[best], "x",
                note=note)]  # fmt: skip
    return rows, {"per_row_point_us": per_point, "seconds": t}


def growth(model, *, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    """16×128² / 16×32² ensemble (B = 8, or 2 with ``quick``) with either chunking."""
    b = 2 if quick else 8
    # The 16×32² calls are about 16× shorter: each round runs them SMALL_CALLS times, so that
    # both grids get a like share of the quiet moments of a shared machine.
    fns = {}
    for grid, calls in ((32, SMALL_CALLS), (128, 1)):
        x, mask = make_batch(batch=b, channels=1, frames=16, grid=grid, seed=1)
        for name, budget in (("points", MAX_NETWORK_POINTS), ("rows", ROWS_ONLY)):
            fn = _ensemble(model, x, mask, budget)
            fns.update({(name, grid, i): fn for i in range(calls)})
    t = interleaved(fns, repeat=2 if quick else 3, budget_s=0.0)
    best: dict[tuple[str, int], float] = {}
    for (name, grid, _), v in t.items():
        best[(name, grid)] = min(best.get((name, grid), float("inf")), v["best"])
    rows = []
    for name, label in (("rows", f"fixed rows ({b * K} in one forward)"),
                        ("points", f"point budget {MAX_NETWORK_POINTS}")):  # fmt: skip
        ratio = best[(name, 128)] / best[(name, 32)]
        rows.append(row("8", f"ensemble B={b} K={K} 16x128² / 16x32², {label}: "
                        f"{best[(name, 128)]:.2f} s / {best[(name, 32)]:.3f} s", ratio, "x",
                        target=f"<= {LINEAR_TARGET}", met=ratio <= LINEAR_TARGET,
                        note="16x the points"))  # fmt: skip
    rows.append(row("8", f"16x128² B={b}: fixed rows / point budget", best[("rows", 128)]
                    / best[("points", 128)], "x",
                    note=f"16x32²: {best[('rows', 32)] / best[('points', 32)]:.2f}x"))  # fmt: skip
    return rows, {"batch": b, "best_s": {f"{n}_{g}": v for (n, g), v in best.items()}}


def b1_batching(model, *, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    """Item 3's B = 1 loop / one batch at 16×32², with either chunking."""
    x, mask = make_batch(batch=1, channels=1, frames=16, grid=32, seed=1)

    def looped():
        return loop_impute(model, x, mask, PARTITION, k=K,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip

    fns = {"points": _ensemble(model, x, mask, MAX_NETWORK_POINTS),
           "rows": _ensemble(model, x, mask, ROWS_ONLY), "loop": looped}  # fmt: skip
    t = interleaved(fns, repeat=3, budget_s=3.0 if quick else 8.0)
    rows = [row("8", f"B=1 16x32² K={K} loop / one batch, {name}: {t['loop']['best']:.3f} s / "
                f"{t[name]['best']:.3f} s", t["loop"]["best"] / t[name]["best"], "x")
            for name in ("rows", "points")]  # fmt: skip
    return rows, {"seconds": t}


def chunking(*, quick: bool) -> tuple[list[dict], dict[str, Any]]:
    """Item 8: chunk scan, growth with the grid and the B = 1 speed-up (one process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    model = make_model(channels=1, frames=16).eval()
    rows, out = [], {"max_network_points": MAX_NETWORK_POINTS}
    for name, fn in (("scan", chunk_scan), ("growth", growth), ("b1", b1_batching)):
        r, o = fn(model, quick=quick)
        rows += r
        out[name] = o
    torch.set_num_threads(before)
    return rows, out


if __name__ == "__main__":
    import json
    import sys

    result_rows, result = chunking(quick="--quick" in sys.argv)
    for r in result_rows:
        print(f"{r['value']:>8.3g} {r['unit']:<3} {r['target']:<7} {r['figure']}  [{r['note']}]")
    print(json.dumps(result, default=str))
