"""``incdyn report EXPERIMENT``: print the paper-style table rebuilt from MLflow, and log it.

incdyn report quickstart                              # test_mse table; logged to the latest parent run
incdyn report paper-table1 --metric test_mse_unobserved --out reports/
incdyn report quickstart --tracking-uri http://mlflow:5000 --no-log
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to the ``incdyn`` parser's subparsers."""
    p = subparsers.add_parser(
        "report", help="rebuild the methods × settings table (mean ± std) from MLflow"
    )
    p.add_argument("experiment", help="MLflow experiment name (a spec's mlflow.experiment or name)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)",
    )
    p.add_argument(
        "--metric", default="test_mse", help="child-run metric to tabulate (lower is better)"
    )
    p.add_argument("--out", type=Path, help="also write report.md, report.csv and report.png here")
    p.add_argument(
        "--all-runs",
        action="store_true",
        help="pool every finished parent run (default: the latest per spec and setting)",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    return p


def run(args: argparse.Namespace) -> int:
    from incdyn.platform.report import build_report, log_report

    try:
        report = build_report(
            args.experiment,
            tracking_uri=args.tracking_uri,
            metric=args.metric,
            runs="all" if args.all_runs else "latest",
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not report.cells:
        print(
            f"error: MLflow experiment {args.experiment!r} has no finished method or trial run "
            f"with metric {args.metric!r}",
            file=sys.stderr,
        )
        return 2
    print(report.to_markdown())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(report.to_markdown() + "\n")
        (args.out / "report.csv").write_text(report.to_csv())
        report.figure().savefig(args.out / "report.png", dpi=120)
        print(f"wrote {args.out}/report.md, report.csv, report.png")
    if not args.no_log:
        run_id = log_report(report, args.tracking_uri)
        print(f"logged to MLflow run {run_id}")
    return 0
