"""The ``incdyn`` command line.

    incdyn run SPEC [--set key=value ...] [--dry-run]   # the whole experiment
    incdyn data generate SPEC [--set ...]               # only build (or reuse) the store
    incdyn audit SPEC [--out DIR]                       # Principle-1 exposure audit (Theorem 1)
    incdyn sweep SPEC [--mode grid|asha] [--method NAME] [--context-ratios 0.5,0.7,0.9] ...  # Ray Tune
    incdyn report EXPERIMENT [--metric test_mse] [--out DIR]  # paper table from MLflow alone
    incdyn serve MODEL [--host 127.0.0.1 --port 8000]   # Ray Serve imputation service
    incdyn ui [SPEC] [--port P]                         # MLflow UI, opened on the methods' comparison

The same ``incdyn run SPEC`` is the entrypoint of ``ray job submit -- incdyn run SPEC``.
"""

from __future__ import annotations

import argparse
import sys

from incdyn.platform.report import cli as report_cli
from incdyn.platform.serve import cli as serve_cli
from incdyn.platform.spec import SpecError, load_spec
from incdyn.platform.sweep import cli as sweep_cli
from incdyn.platform.ui import cli as ui_cli


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="experiment spec (YAML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. training.steps=200 or methods.ours.ensemble=5",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incdyn", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment spec end to end")
    _spec_args(run)
    run.add_argument("--dry-run", action="store_true", help="print the resolved spec and exit")
    data = sub.add_parser("data", help="data-set commands")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    gen = data_sub.add_parser("generate", help="generate (or reuse) the spec's store")
    _spec_args(gen)
    audit = sub.add_parser("audit", help="exposure audit of every diffusion method's partition")
    _spec_args(audit)
    audit.add_argument(
        "--out", default="audit", help="folder for the exposure maps (default: audit/)"
    )
    serve_cli.add_parser(sub)
    sweep_cli.add_parser(sub)
    report_cli.add_parser(sub)
    ui_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":  # takes a model, not a spec
        return serve_cli.run(args)
    if args.command == "sweep":  # loads its own spec (--set, --method, axes)
        return sweep_cli.run(args)
    if args.command == "report":  # takes an MLflow experiment name, not a spec
        return report_cli.run(args)
    if args.command == "ui":  # a spec is optional
        return ui_cli.run(args)
    try:
        spec = load_spec(args.spec, args.overrides)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        from incdyn.platform.experiment.run import dry_run, run_experiment

        if args.dry_run:
            print(dry_run(spec))
            return 0
        try:
            run_experiment(spec)
        except SpecError as exc:  # e.g. refused by the exposure audit, before Ray starts
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"compare the methods in the MLflow UI: incdyn ui {args.spec}")
        return 0
    if args.command == "audit":
        from incdyn.platform.experiment.audit import run_audit

        return run_audit(spec, args.out)
    if args.command == "data":
        from incdyn.platform.experiment.run import ensure_data
        from incdyn.platform.ray_session import init_ray

        init_ray(spec.ray.address)
        ensure_data(spec)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
