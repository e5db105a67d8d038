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

A mistake in what the user gave (a :class:`UserError`, also when a Ray task, actor or Train
worker raised it) ends the command with one line, ``incdyn: error: FIELD: what is wrong (the
fix)``, and exit status 2; ``incdyn --debug ...`` shows its traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

from incdyn.datasets.errors import UserError
from incdyn.platform import console
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
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error in what was given (spec, data, model, port)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in dict.fromkeys(SUBCOMMANDS.values()):
        module.add_parser(sub)
    return parser


def user_error_of(exc: BaseException, depth: int = 0) -> UserError | None:
    """The :class:`UserError` behind ``exc``, unwrapped from what Ray wraps it in: a Ray task's
    or actor's ``RayTaskError`` (``.cause``), Ray Train's ``WorkerGroupError``
    (``.worker_failures``) and ``ControllerError`` (``.controller_failure``), or an error
    raised ``from`` it; else None."""
    if depth > 8:
        return None
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):  # a RayTaskError, whose as_instanceof_cause() is a
        return user_error_of(cause, depth + 1)  # UserError too, with a traceback as its text
    if isinstance(exc, UserError):
        return exc
    inner = [getattr(exc, "controller_failure", None), exc.__cause__]
    inner += list((getattr(exc, "worker_failures", None) or {}).values())
    for candidate in inner:
        if isinstance(candidate, BaseException):
            found = user_error_of(candidate, depth + 1)
            if found is not None:
                return found
    return None


def main(argv: list[str] | None = None) -> int:
    # MLflow draws a bar per artifact download (reports and serving read many small ones);
    # incdyn's console shows its own progress. MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true keeps them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    console.configure(getattr(args, "verbose", False))
    try:
        status = SUBCOMMANDS[args.command].run(args)
    except Exception as exc:
        error = user_error_of(exc)
        if error is None or args.debug:
            _name_log_file()
            raise  # a bug, or asked for: the traceback
        print(f"incdyn: error: {error.line()}", file=sys.stderr, flush=True)
        return 2
    _name_log_file()
    return status


def _name_log_file() -> None:
    path = console.log_file()
    if path is not None:
        print(f"incdyn: Ray's and MLflow's own messages are in {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
