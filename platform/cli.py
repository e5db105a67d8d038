"""The ``incdyn`` command line: one sub-command group per sub-package, each in its ``cli.py``.

    incdyn run SPEC [--set key=value ...] [--dry-run]   # the whole experiment
    incdyn data generate SPEC [--set ...]               # only build (or reuse) the store
    incdyn audit SPEC [--out DIR]                       # Principle-1 exposure audit (Theorem 1)
    incdyn sweep SPEC [--mode grid|asha] [--method NAME] [--context-ratios 0.5,0.7,0.9] ...  # Ray Tune
    incdyn report EXPERIMENT [--metric test_mse] [--out DIR]  # paper table from MLflow alone
    incdyn serve MODEL [--host 127.0.0.1 --port 8000]   # Ray Serve imputation service
    incdyn impute MODEL --input URL --out URL           # fill a whole record (zarr/netCDF out)
    incdyn ui [SPEC] [--port P]                         # MLflow UI, opened on the methods' comparison
    incdyn suggest MODEL --input URL --time T --budget N  # where to observe next

The same ``incdyn run SPEC`` is the entrypoint of ``ray job submit -- incdyn run SPEC``.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

from incdyn.platform.experiment import cli as experiment_cli
from incdyn.platform.impute import cli as impute_cli
from incdyn.platform.report import cli as report_cli
from incdyn.platform.serve import cli as serve_cli
from incdyn.platform.suggest import cli as suggest_cli
from incdyn.platform.sweep import cli as sweep_cli
from incdyn.platform.ui import cli as ui_cli

# command → the sub-package CLI that parses and runs it
SUBCOMMANDS: dict[str, ModuleType] = {
    **{command: experiment_cli for command in experiment_cli.COMMANDS},
    "sweep": sweep_cli,
    "report": report_cli,
    "serve": serve_cli,
    "suggest": suggest_cli,
    "impute": impute_cli,
    "ui": ui_cli,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incdyn",
        description="Complete dynamics from incomplete data: experiments on Ray, recorded in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in dict.fromkeys(SUBCOMMANDS.values()):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # MLflow draws a bar per artifact download (reports and serving read many small ones);
    # incdyn's console shows its own progress. MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true keeps them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    return SUBCOMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
