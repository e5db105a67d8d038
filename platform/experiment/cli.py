"""``incdyn run``, ``incdyn data generate`` and ``incdyn audit``: the commands that take a spec.

incdyn run SPEC [--set key=value ...] [--dry-run]   # the whole experiment
incdyn data generate SPEC [--set ...]               # only build (or reuse) the store
incdyn audit SPEC [--out DIR]                       # Principle-1 exposure audit (Theorem 1)
"""

from __future__ import annotations

import argparse
from typing import Any

from incdyn.platform.spec import add_spec_arguments, load_spec

COMMANDS = ("run", "data", "audit")


def add_parser(subparsers: Any) -> None:
    """Add ``run``, ``data generate`` and ``audit`` to the ``incdyn`` parser's subparsers."""
    run = subparsers.add_parser("run", help="run an experiment spec end to end")
    add_spec_arguments(run)
    run.add_argument("--dry-run", action="store_true", help="print the resolved spec and exit")
    run.add_argument(
        "--verbose", action="store_true", help="show Ray's own logs beside the progress bars"
    )
    data = subparsers.add_parser("data", help="data-set commands")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    generate = data_sub.add_parser("generate", help="generate (or reuse) the spec's store")
    add_spec_arguments(generate)
    generate.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    audit = subparsers.add_parser(
        "audit", help="exposure audit of every diffusion method's partition"
    )
    add_spec_arguments(audit)
    audit.add_argument(
        "--out", default="audit", help="folder for the exposure maps (default: audit/)"
    )


def run(args: argparse.Namespace) -> int:
    """A mistake in the spec or its data fails before Ray starts (a UserError: cli.main)."""
    spec = load_spec(args.spec, args.overrides)
    if args.command == "audit":
        from incdyn.platform.evaluation.audit import run_audit

        return run_audit(spec, args.out)
    if args.command == "data":
        from incdyn.platform.data_prep import check_data, ensure_data
        from incdyn.platform.job_paths import check_job_paths
        from incdyn.platform.ray_session import init_ray

        check_job_paths(spec)  # inside a Ray job: no relative store that would be lost
        check_data(spec)
        init_ray(spec.ray.address, verbose=args.verbose)
        ensure_data(spec)
        return 0
    from incdyn.platform.experiment.run import dry_run, run_experiment

    if args.dry_run:
        print(dry_run(spec))
        return 0
    run_experiment(spec, verbose=args.verbose)  # the audit may refuse it before Ray starts
    print(f"compare the methods in the MLflow UI: incdyn ui {args.spec}")
    return 0
