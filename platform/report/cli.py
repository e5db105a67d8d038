"""``incdyn report EXPERIMENT``: print the paper-style table rebuilt from MLflow, and log it.

incdyn report quickstart                              # test_mse table; logged to the latest parent run
incdyn report paper-table1 --metric test_mse_unobserved --out reports/
incdyn report quickstart --tracking-uri http://mlflow:5000 --no-log
incdyn report --claims experiments/repro_cpu/claims.yaml --out experiments/repro_cpu/RESULTS.md
incdyn report --claims experiments/repro_cpu/claims.yaml --out experiments/repro_cpu/RESULTS.md --from-csv
incdyn report repro-cpu-pilots --pick training.lr --spec repro-pixel-ns --method ours
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
    p.add_argument(
        "--from-csv",
        action="store_true",
        help="with --claims: rebuild --out from the runs' CSV beside it (<out>_runs.csv, and "
        "<out>_pilot_runs.csv with pilots) instead of MLflow; without it, MLflow's runs are "
        "exported to those CSVs",
    )
    p.add_argument(
        "--pick",
        metavar="PARAM",
        help="print 'METHOD VALUE': the method and value of this param (e.g. training.lr) whose "
        "runs in EXPERIMENT have the lowest mean --by (pilot runs of --spec)",
    )
    p.add_argument("--spec", help="with --pick: the spec name of the runs")
    p.add_argument("--method", help="with --pick: the method of the runs")
    p.add_argument(
        "--by", default="val_heldout_mse", help="with --pick: the truth-free validation figure"
    )
    p.add_argument(
        "--allow-truth",
        action="store_true",
        help="with --pick: accept a validation-truth figure (val_mse) as --by",
    )
    return p


def _csv_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(f"{out.stem}_runs.csv"), out.with_name(f"{out.stem}_pilot_runs.csv")


def _claims_records(args: argparse.Namespace, claims) -> tuple[list, list]:
    """The claims' and the pilots' run records: from the CSVs beside --out, or from MLflow
    (then written to those CSVs)."""
    from mlflow.tracking import MlflowClient

    from incdyn.platform.report.records import mlflow_records, read_records
    from incdyn.platform.report.tables import runs_counted
    from incdyn.platform.tracking import resolve_tracking_uri

    runs_csv, pilots_csv = _csv_paths(args.out) if args.out else (None, None)
    if args.from_csv:
        if args.out is None:
            raise ValueError("--from-csv needs --out (the CSVs lie beside it)")
        return read_records(runs_csv), (read_records(pilots_csv) if claims.pilots else [])
    client = MlflowClient(resolve_tracking_uri(args.tracking_uri))
    parents, children = runs_counted(mlflow_records(claims.experiment, client))
    records = parents + children
    pilots = []
    if claims.pilots:
        pilot_parents, pilot_children = runs_counted(
            mlflow_records(claims.pilots.experiment, client), "all"
        )
        pilots = pilot_parents + pilot_children
    return records, pilots


def _run_claims(args: argparse.Namespace) -> int:
    from incdyn.platform.report.claims import check_claims, claims_markdown, load_claims
    from incdyn.platform.report.records import write_records

    try:
        claims = load_claims(args.claims)
        records, pilots = _claims_records(args, claims)
        result = check_claims(claims, records, pilots)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs_csv, pilots_csv = _csv_paths(args.out or Path("RESULTS.md"))
    text = claims_markdown(result, runs_csv.name)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not args.from_csv:
            write_records(result.records, runs_csv)
            if claims.pilots:
                write_records(result.pilots, pilots_csv)
            print(f"wrote {runs_csv}" + (f" and {pilots_csv}" if claims.pilots else ""))
        args.out.write_text(text)
        print(f"wrote {args.out}")
    if not args.no_log and not args.from_csv and result.parents:
        from mlflow.tracking import MlflowClient

        from incdyn.platform.tracking import resolve_tracking_uri

        run_id = result.parents[-1].run_id
        client = MlflowClient(resolve_tracking_uri(args.tracking_uri))
        client.log_text(run_id, text, "claims/RESULTS.md")
        client.log_text(run_id, write_records(result.records), f"claims/{runs_csv.name}")
        print(f"logged to MLflow run {run_id}")
    return 0


def _run_pick(args: argparse.Namespace) -> int:
    """Print the pilots' choice of ``--pick`` (nothing else on stdout: scripts read it)."""
    from mlflow.tracking import MlflowClient

    from incdyn.platform.report.claims.pilots import pilot_choices
    from incdyn.platform.report.records import mlflow_records
    from incdyn.platform.tracking import resolve_tracking_uri

    try:
        client = MlflowClient(resolve_tracking_uri(args.tracking_uri))
        choices = pilot_choices(
            mlflow_records(args.experiment, client),
            args.pick,
            args.by,
            spec=args.spec,
            method=args.method,
            allow_truth=args.allow_truth,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(choices) != 1:
        found = [c.spec for c in choices]
        print(
            f"error: --pick needs the pilot runs of one spec; found {found} (name it with --spec)",
            file=sys.stderr,
        )
        return 2
    (choice,) = choices
    for (method, value), (mean, n) in choice.candidates.items():
        print(
            f"{method} {args.pick}={value}: mean {args.by} {mean:.6g} ({n} run(s))", file=sys.stderr
        )
    print(*choice.chosen)  # "METHOD VALUE"
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
    if args.pick:
        return _run_pick(args)

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
