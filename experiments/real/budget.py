"""The training budget of a real-record spec, by the rule of experiments/real/PROTOCOL.md, from
its pilot's learning curve on validation held-out points (no truth, no test data read).

    python experiments/real/budget.py --spec real_ncep_air [--experiment real-pilots]

Prints the steps ``B`` on the last line; with ``--curve FILE`` appends the pilot's curve
(spec, step, ckpt_val_heldout_mse, steps_per_s, B) to a CSV. ``--from-curve FILE`` reads the
curve from such a CSV instead of MLflow (the pilots' store need not be kept) and applies the
same rule to it.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from mlflow.tracking import MlflowClient

from incdyn.platform.tracking import TAG_ROLE, search_all

METRIC = "ckpt_val_heldout_mse"
GAIN, AHEAD, FIRST, LAST, CAP_S, STEP = 0.02, 1000, 1000, 3000, 60.0, 500


def budget(curve: dict[int, float], steps_per_s: float) -> tuple[int, int, int]:
    """``(B, by the rule, the cap)``: the smallest checkpoint step ``s ≥ FIRST`` whose value
    ``AHEAD`` steps later is less than ``GAIN`` lower (else 4000), capped at ``steps_per_s ×
    CAP_S`` rounded down to a multiple of ``STEP`` (at least ``FIRST``)."""
    rule = 4000
    for s in sorted(curve):
        ahead = curve.get(s + AHEAD)
        if FIRST <= s <= LAST and ahead is not None and ahead > (1 - GAIN) * curve[s]:
            rule = s
            break
    cap = max(FIRST, int(steps_per_s * CAP_S) // STEP * STEP)
    return min(rule, cap), rule, cap


def pilot_curve(client: MlflowClient, experiment: str, spec: str) -> tuple[dict[int, float], float]:
    """The newest finished pilot run of ``spec`` (method ``ours``): its checkpoint curve and its
    training speed (steps/s)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment {experiment!r}: run the pilot first")
    runs = [
        r
        for r in search_all(client, exp.experiment_id)
        if r.info.status == "FINISHED"
        and r.data.tags.get(TAG_ROLE) == "method"
        and r.data.params.get("name") == spec
        and METRIC in r.data.metrics
    ]
    if not runs:
        raise SystemExit(f"no finished pilot run of {spec!r} in {experiment!r} with {METRIC}")
    run = max(runs, key=lambda r: r.info.start_time)
    history = client.get_metric_history(run.info.run_id, METRIC)
    return {int(m.step): float(m.value) for m in history}, float(run.data.metrics["steps_per_s"])


def curve_from_csv(path: str, spec: str) -> tuple[dict[int, float], float]:
    """The curve and speed of ``spec`` as a CSV written with ``--curve`` holds them."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["spec"] == spec]
    if not rows:
        raise SystemExit(f"{path}: no pilot curve of {spec!r}; run the pilot or pick its CSV")
    return {int(r["step"]): float(r[METRIC]) for r in rows}, float(rows[0]["steps_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="the spec name (e.g. real_ncep_air)")
    ap.add_argument("--experiment", default="real-pilots")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--curve", help="append the pilot's curve to this CSV")
    ap.add_argument("--from-curve", help="read the pilot's curve from this CSV, not MLflow")
    args = ap.parse_args()
    if args.from_curve:
        curve, speed = curve_from_csv(args.from_curve, args.spec)
    else:
        curve, speed = pilot_curve(MlflowClient(args.tracking_uri), args.experiment, args.spec)
    chosen, rule, cap = budget(curve, speed)
    for s in sorted(curve):
        print(f"{args.spec} pilot step {s}: {METRIC} {curve[s]:.5f}")
    print(f"{args.spec}: {speed:.1f} steps/s; rule {rule}, cap {cap}")
    if args.curve:
        new = not Path(args.curve).exists()
        with open(args.curve, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["spec", "step", METRIC, "steps_per_s", "budget"])
            for s in sorted(curve):
                w.writerow([args.spec, s, repr(curve[s]), repr(speed), chosen])
    print(chosen)


if __name__ == "__main__":
    main()
