"""RESULTS.md of the real-record comparison (experiments/real/PROTOCOL.md), rebuilt from CSVs.

    python experiments/real/results.py --out experiments/real/RESULTS.md [--curve PILOT_CSV]
    python experiments/real/results.py --out experiments/real/RESULTS.md --from-csv

Without ``--from-csv`` the runs of the two experiments (and the pilots) are exported from MLflow
($MLFLOW_TRACKING_URI) to ``RESULTS_runs.csv`` and ``RESULTS_pilot_runs.csv`` beside ``--out``,
the pilot curve is copied to ``RESULTS_pilot_curve.csv``, each seed's normalisation (the
training split's observed mean and standard deviation, from its store under ``--stores``) goes
to ``RESULTS_norm.csv``, and a figure of one test frame per method is drawn per record
(``RESULTS_<record>.png``); then, in both modes, every number of RESULTS.md is computed from
those CSVs alone.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from incdyn.platform.report.records import mlflow_records, read_records, write_records

RECORDS = {"real_cobe_sst2": "COBE-SST2 (global 2°, coastal tiles)", "real_ncep_air": "NCEP air"}
UNITS = {"real_cobe_sst2": "°C", "real_ncep_air": "K"}
PHYSICAL = [("test_mse", "test RMSE"), ("test_mse_unobserved", "RMSE at the gaps")]
PILOTS = "real-pilots"
ORACLE = "oracle"
COLUMNS = [
    ("test_mse", "test MSE"),
    ("test_mse_unobserved", "MSE at the gaps"),
    ("test_heldout_mse", "held-out MSE"),
    ("test_crps", "CRPS"),
    ("test_calibrated_coverage_90", "calibrated 90 % coverage"),
    ("seconds", "wall time (s)"),
]


def _method_rows(records) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """experiment → method → seed → metrics, of the finished method runs."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r.role != "method" or r.status != "FINISHED" or r.experiment not in RECORDS:
            continue
        method = r.tags.get("incdyn.method") or r.params.get("method.name")
        seed = int(r.tags.get("incdyn.seed", r.params.get("seed", -1)))
        out[r.experiment][method][seed] = r.metrics  # the newest run of a (method, seed) wins
    return out


def _cell(values: list[float], metric: str) -> str:
    if not values:
        return "–"
    m, s = float(np.mean(values)), float(np.std(values))
    if metric == "seconds":
        return f"{m:.0f} ± {s:.0f}"
    if metric == "rmse":
        return f"{m:.3f} ± {s:.3f}"
    if "coverage" in metric:
        return f"{m:.1%} ± {s:.1%}"
    return f"{m:.4f} ± {s:.4f}"


def _mean(seeds: dict[int, dict[str, float]], metric: str) -> float | None:
    values = [m[metric] for m in seeds.values() if metric in m and np.isfinite(m[metric])]
    return float(np.mean(values)) if values else None


def _rmse(seeds: dict[int, dict[str, float]], metric: str, std: dict[int, float]) -> str:
    """Mean ± standard deviation over the seeds of ``sqrt(MSE) · std``, physical units."""
    values = [
        float(np.sqrt(m[metric])) * std[s]
        for s, m in seeds.items()
        if metric in m and np.isfinite(m[metric]) and s in std
    ]
    return _cell(values, "rmse")


def _record_section(
    name: str, methods: dict[str, dict[int, dict[str, float]]], std: dict[int, float]
) -> list[str]:
    lines = [f"## {RECORDS[name]}", ""]
    physical = [f"{label} ({UNITS[name]})" for _, label in PHYSICAL] if std else []
    head = ["method", "seeds", *physical, *(label for _, label in COLUMNS)]
    head.append("beats ours on test MSE")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ours = methods.get("ours", {})
    order = sorted(methods, key=lambda m: (m == ORACLE, _mean(methods[m], "test_mse") or np.inf))
    for method in order:
        seeds = methods[method]
        cells = [_rmse(seeds, k, std) for k, _ in PHYSICAL] if std else []
        cells += [
            _cell([m[k] for m in seeds.values() if k in m and np.isfinite(m[k])], k)
            for k, _ in COLUMNS
        ]
        wins = [
            s for s in seeds if s in ours and seeds[s].get("test_mse", np.inf) < ours[s]["test_mse"]
        ]
        beat = "–" if method == "ours" else f"{len(wins)} of {len(set(seeds) & set(ours))}"
        label = f"{method} (reference, not judged)" if method == ORACLE else method
        lines.append("| " + " | ".join([label, str(len(seeds)), *cells, beat]) + " |")
    judged = {m: s for m, s in methods.items() if m != ORACLE}
    truth = {m: v for m in judged if (v := _mean(judged[m], "test_mse")) is not None}
    held = {m: v for m in judged if (v := _mean(judged[m], "test_heldout_mse")) is not None}
    both = sorted(set(truth) & set(held))
    best_truth, best_held = min(truth, key=truth.get), min(held, key=held.get)
    rho = spearmanr([truth[m] for m in both], [held[m] for m in both]).statistic
    cover = _mean(ours, "test_calibrated_coverage_90")
    lines += [
        "",
        f"- **Best on truth** (lowest mean test MSE, oracle excluded): **{best_truth}**.",
        f"- **Best on held-out points** (lowest mean held-out MSE): **{best_held}** — "
        + ("the same method." if best_truth == best_held else "a different method."),
        f"- **Rank agreement** of the {len(both)} methods' held-out and truth rankings: "
        f"Spearman ρ = {rho:.2f}.",
        "- **Ours' calibrated 90 % coverage** (truth at the gaps): "
        + ("–" if cover is None else f"{cover:.1%}")
        + ".",
        "",
    ]
    return lines


def _pilot_section(curve_csv: Path) -> list[str]:
    if not curve_csv.exists():
        return []
    rows = list(csv.DictReader(curve_csv.open()))
    lines = ["## Pilots: the training budget", ""]
    for spec in dict.fromkeys(r["spec"] for r in rows):
        mine = [r for r in rows if r["spec"] == spec]
        curve = ", ".join(f"{r['step']}: {float(r['ckpt_val_heldout_mse']):.4f}" for r in mine)
        speed = float(mine[0]["steps_per_s"])
        lines.append(
            f"- `{spec}`: validation held-out MSE by step — {curve}; {speed:.1f} steps/s; "
            f"budget **{mine[0]['budget']} steps**."
        )
    return [*lines, ""]


def _norm_rows(stores: Path) -> list[list]:
    """(spec, seed, channel, mean, std) of every seed store of the two records."""
    from incdyn.datasets.store import normalization

    rows = []
    for name in RECORDS:
        for path in sorted(stores.glob(f"{name}-seed*.zarr")):
            seed = int(path.stem.rsplit("seed", 1)[1])
            mean, std = normalization(str(path))
            rows += [[name, seed, c, float(mean[c]), float(std[c])] for c in range(std.size)]
    return rows


def _norm_std(path: Path) -> dict[str, dict[int, float]]:
    """spec → seed → standard deviation of the (one) channel, from ``RESULTS_norm.csv``."""
    out: dict = defaultdict(dict)
    if path.exists():
        with path.open(newline="") as f:
            for r in csv.DictReader(f):
                if int(r["channel"]) == 0:
                    out[r["spec"]][int(r["seed"])] = float(r["std"])
    return out


def export(out: Path, curve: str | None, stores: Path | None) -> None:
    """MLflow → the CSVs beside ``out``, and one figure per record."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    records = [r for name in RECORDS for r in mlflow_records(name, client)]
    write_records(records, out.with_name(out.stem + "_runs.csv"))
    if client.get_experiment_by_name(PILOTS) is not None:
        write_records(mlflow_records(PILOTS, client), out.with_name(out.stem + "_pilot_runs.csv"))
    else:
        print(f"no MLflow experiment {PILOTS!r} here: the pilots are given by the curve CSV only")
    if stores is not None:
        with out.with_name(out.stem + "_norm.csv").open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["spec", "seed", "channel", "mean", "std"])
            w.writerows(_norm_rows(stores))
    if curve:
        shutil.copy(curve, out.with_name(out.stem + "_pilot_curve.csv"))
    from frame_figure import draw_record

    for name in RECORDS:
        draw_record(client, records, name, out.with_name(f"{out.stem}_{name}.png"))


def build(out: Path) -> str:
    records = read_records(out.with_name(out.stem + "_runs.csv"))
    rows = _method_rows(records)
    std = _norm_std(out.with_name(out.stem + "_norm.csv"))
    lines = [
        "# Real records: results",
        "",
        "Made by `bash experiments/real/run.sh` under `experiments/real/PROTOCOL.md` (committed "
        "before these runs); every number below is computed by `experiments/real/results.py "
        "--from-csv` from `RESULTS_runs.csv` and `RESULTS_norm.csv` (mean ± standard deviation "
        "over the seeds; MSE in normalised units, the training split's observed mean and "
        "standard deviation; RMSE in the record's units, sqrt(MSE) × that seed's standard "
        "deviation).",
        "",
        "PROTOCOL.md's amendment 1 applies: DINEOF on the record tries at most 20 modes and "
        "stops each reconstruction at a relative change of 1e-3 (the machine time; its "
        "cross-validation wanted more modes on NCEP air), so its rows are a handicapped DINEOF.",
        "",
        *_pilot_section(out.with_name(out.stem + "_pilot_curve.csv")),
    ]
    for name in RECORDS:
        if name in rows:
            lines += _record_section(name, rows[name], std.get(name, {}))
            figure = out.with_name(f"{out.stem}_{name}.png")
            if figure.exists():
                lines += [f"![one test frame per method]({figure.name})", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--from-csv", action="store_true")
    ap.add_argument("--curve", help="the pilot curve CSV written by budget.py")
    ap.add_argument("--stores", type=Path, help="the folder of the seed stores (their norms)")
    args = ap.parse_args()
    if not args.from_csv:
        export(args.out, args.curve, args.stores)
    args.out.write_text(build(args.out) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
