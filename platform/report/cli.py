"""``incdyn report EXPERIMENT``: print the paper-style table rebuilt from MLflow, and log it.

incdyn report quickstart                              # test_mse table; logged to the latest parent run
incdyn report paper-table1 --metric test_mse_unobserved --out reports/
incdyn report quickstart --tracking-uri http://mlflow:5000 --no-log
incdyn report --claims experiments/repro_cpu/claims.yaml --out experiments/repro_cpu/RESULTS.md
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
    p.add_argument(
        "experiment",
        nargs="?",
        help="MLflow experiment name (a spec's mlflow.experiment or name); not with --claims",
    )
    p.add_argument(
        "--claims",
        type=Path,
        help="check the paper's claims listed in this YAML file (names its own experiment); "
        "--out is then the markdown file to write (e.g. RESULTS.md)",
    )
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


def _run_claims(args: argparse.Namespace) -> int:
    from incdyn.platform.report.claims import check_claims, claims_markdown, load_claims

    try:
        claims = load_claims(args.claims)
        result = check_claims(claims, args.tracking_uri)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = claims_markdown(result)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    if not args.no_log and result.parents:
        from mlflow.tracking import MlflowClient

        run_id = result.parents[-1].info.run_id
        MlflowClient(result.tracking_uri).log_text(run_id, text, "claims/RESULTS.md")
        print(f"logged to MLflow run {run_id}")
    return 0


def run(args: argparse.Namespace) -> int:
    from incdyn.platform.report.tables import build_report, log_report

    if args.claims:
        if args.experiment:
            print("error: give an experiment or --claims, not both", file=sys.stderr)
            return 2
        return _run_claims(args)
    if not args.experiment:
        print("error: name an MLflow experiment (or give --claims FILE)", file=sys.stderr)
        return 2

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
    _verification_section(args, report.latest_parent)
    return 0


def _verification_section(args: argparse.Namespace, parent_id: str | None) -> None:
    """Ensemble verification and error against K of the same runs (report/verification.py)."""
    from incdyn.platform.report.verification import build_verification, log_verification_report

    ver = build_verification(
        args.experiment, args.tracking_uri, "all" if args.all_runs else "latest"
    )
    if ver is None:
        return
    print(f"\nensemble verification of {args.experiment} (training-std units)")
    print(ver.to_markdown())
    if args.out:
        (args.out / "verification.md").write_text(ver.to_markdown() + "\n")
        if ver.curves:
            ver.k_figure(args.experiment).savefig(args.out / "error_vs_k.png", dpi=120)
        if ver.ranks:
            ver.rank_figure(args.experiment).savefig(args.out / "rank_histogram.png", dpi=120)
        print(f"wrote {args.out}/verification.md, error_vs_k.png, rank_histogram.png")
    if not args.no_log and parent_id is not None:
        log_verification_report(ver, parent_id, args.experiment, args.tracking_uri)
