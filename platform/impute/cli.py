"""``incdyn impute``: fill a whole gridded record (every frame, every point of its domain) with a
trained model or a classical method, into a zarr (or netCDF) of the same layout.

    incdyn impute models:/sst/1 --input sst.nc --out sst_filled.zarr
    incdyn impute RUN_ID --input gs://bucket/x.zarr --out x.nc --time 2000:2005 --actors 2
    incdyn impute CKPT --input in.nc --out out.zarr --holdout 0.1 --mlflow
    incdyn impute --method dineof --input in.nc --variables sst --dims time,lat,lon --out d.zarr
    incdyn impute CKPT --input in.nc --out out.zarr --dry-run      # the plan, nothing read

A killed run resumes when rerun with the same options; ``--overwrite`` replaces an output.
"""

from __future__ import annotations

import argparse
from typing import Any


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _dims(text: str) -> tuple[str, str, str]:
    names = _csv(text)
    if len(names) != 3:
        raise argparse.ArgumentTypeError(f"--dims takes TIME,Y,X (three names), got {text!r}")
    return names  # type: ignore[return-value]


def _time(text: str) -> tuple[str, str]:
    start, sep, end = text.partition(":")
    if not sep or not start or not end:
        raise argparse.ArgumentTypeError(f"--time takes START:END (e.g. 1990:1999), got {text!r}")
    return start, end


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``impute`` subcommand to the ``incdyn`` parser's subparsers."""
    p = subparsers.add_parser(
        "impute", help="fill a whole gridded record with a trained model or a classical method"
    )
    p.add_argument(
        "model",
        nargs="?",
        help="checkpoint directory, MLflow run id or models:/NAME/VERSION (none with --method)",
    )
    p.add_argument("--input", required=True, help="zarr store or netCDF file (path, memory://)")
    p.add_argument("--out", required=True, help="output zarr, or netCDF by extension (.nc)")
    p.add_argument(
        "--method",
        default="model",
        choices=["model", "dineof", "telea", "inpaint_ns", "temporal"],
        help="a classical method instead of MODEL",
    )
    p.add_argument("--variables", type=_csv, help="VAR[,VAR...] (default: the model's)")
    p.add_argument("--dims", type=_dims, help="TIME,Y,X dimension names (default: the model's)")
    p.add_argument("--time", type=_time, help="START:END, e.g. 1990:1999 (default: every frame)")
    p.add_argument("--k", type=int, help="ensemble size K (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="base seed of every window's draws")
    p.add_argument("--level", type=float, default=0.9, help="central level of VAR_lower/upper")
    p.add_argument("--window", type=int, default=8, help="classical methods: frames per window")
    p.add_argument("--stride", type=int, help="frames between windows (default: half a window)")
    p.add_argument("--block", type=int, default=32, help="frames per output block (time chunk)")
    p.add_argument("--actors", type=int, default=1, help="Ray Data imputers (0: this process)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="Ray CPUs per imputer")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="Ray GPUs per imputer")
    p.add_argument("--holdout", type=float, default=0.0, help="share of observed points withheld")
    p.add_argument("--holdout-seed", type=int, default=0, help="seed of the held-out draw")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--dry-run", action="store_true", help="print the plan; read no values")
    p.add_argument("--mlflow", action="store_true", help="record the imputation as an MLflow run")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    return p


def run(args: argparse.Namespace) -> int:
    from incdyn.platform.impute.options import ImputeOptions
    from incdyn.platform.impute.runner import run_impute

    opts = ImputeOptions(
        model=args.model,
        input=args.input,
        out=args.out,
        method=args.method,
        variables=args.variables,
        dims=args.dims,
        time=args.time,
        k=args.k,
        seed=args.seed,
        level=args.level,
        window=args.window,
        stride=args.stride,
        block=args.block,
        actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor,
        holdout=args.holdout,
        holdout_seed=args.holdout_seed,
        overwrite=args.overwrite,
        dry_run=args.dry_run,
        mlflow=args.mlflow,
        tracking_uri=args.tracking_uri,
    )
    summary = run_impute(opts)  # a bad input is an ImputeError: one line (cli.main)
    print(summary.plan["text"] if args.dry_run else summary.text(), flush=True)
    return 0
