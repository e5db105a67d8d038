"""``incdyn suggest MODEL``: where one more observation would most reduce the imputation's
uncertainty, ranked, as a table, JSON, CSV and a map.

    incdyn suggest RUN_ID --input air.nc --time 2014-06-01T12 --budget 10           # points
    incdyn suggest models:/air-ours/1 --input air.nc --time 2014-06-01 --budget 3 --unit tile --tile 6
    incdyn suggest CKPT --input air.nc --time 2014-06-01 --budget 2 --unit station --sites sites.csv
    incdyn suggest CKPT --input data/quickstart.zarr --sample 0 --budget 10 --rule spread

The units are chosen greedily from the K members of the single-step ensemble of the window
holding the time (the model's number of frames, ending there), each pick the unit whose
observation most reduces the summed predictive variance of the window's unobserved points
under the members' covariance, given the picks before it (``--rule variance``); ``spread`` and
``random`` are the references it is measured against.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

RULES = ("variance", "spread", "random")
UNITS = ("point", "station", "tile")


def _pair(text: str) -> tuple[int, int]:
    try:
        y, x = (int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COLUMN, got {text!r}") from None
    return y, x


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``suggest`` subcommand to the ``incdyn`` parser's subparsers."""
    p = subparsers.add_parser(
        "suggest", help="where to observe next: ranked points, stations or tiles"
    )
    p.add_argument("model", help="checkpoint directory, MLflow run id, or models:/NAME/VERSION")
    p.add_argument("--input", required=True, help="record (netCDF/zarr) or incdyn store")
    p.add_argument("--time", help="record: the time of the new observations (date or value)")
    p.add_argument("--corner", type=_pair, default=(0, 0), help="record: ROW,COLUMN of the tile")
    p.add_argument("--sample", type=int, help="store: the sample (window) of --split")
    p.add_argument("--split", default="test", help="store: the split (default test)")
    p.add_argument("--frame", type=int, help="store: the window's frame (default the last)")
    p.add_argument("--budget", type=int, required=True, help="units to choose")
    p.add_argument("--unit", choices=UNITS, default="point", help="what one observation reveals")
    p.add_argument("--tile", type=int, default=4, help="tile side in grid points")
    p.add_argument("--sites", type=Path, help="station candidates: CSV with y,x coordinates")
    p.add_argument("--radius", type=float, default=1.0, help="station disk radius, grid points")
    p.add_argument("--rule", choices=RULES, default="variance", help="how units are ranked")
    p.add_argument(
        "--noise", type=float, default=0.1, help="observation noise std, training-std units"
    )
    p.add_argument("--k", type=int, help="ensemble members (default: the model's K, at least 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the members' draws")
    p.add_argument("--out", type=Path, default=Path("suggestions"), help="output folder")
    p.add_argument("--mlflow", metavar="EXPERIMENT", help="log the suggestion as an MLflow run")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    return p


def _sites(path: Path, window) -> list[tuple[int, int]]:
    """Candidate station positions: the grid point nearest each CSV row's coordinates."""
    import numpy as np

    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = [(window.y_name, window.x_name), ("y", "x")]
    keys = next((k for k in names if rows and set(k) <= set(rows[0])), None)
    if keys is None:
        raise ValueError(f"--sites: {path} needs columns {window.y_name},{window.x_name} (or y,x)")
    return [
        (int(np.abs(window.y - float(r[keys[0]])).argmin()),
         int(np.abs(window.x - float(r[keys[1]])).argmin()))
        for r in rows
    ]  # fmt: skip


def _load(args: argparse.Namespace):
    """The model, its plan and the window, all checked before any work."""
    from incdyn.platform.checkpoint import checkpoint_spec, load_denoiser
    from incdyn.platform.registry.model_source import resolve_checkpoint
    from incdyn.platform.sampling import sampler_plan
    from incdyn.platform.suggest.options import SuggestOptions
    from incdyn.platform.suggest.record import record_window, store_window

    checkpoint = resolve_checkpoint(args.model, args.tracking_uri)
    denoiser, meta = load_denoiser(checkpoint)
    spec, method = checkpoint_spec(meta)
    if args.sample is not None:
        window = store_window(args.input, args.split, args.sample, args.frame)
    elif args.time is None:
        raise ValueError("--time: name the time of the new observations (or --sample for a store)")
    else:
        window = record_window(spec, int(meta["frames"]), args.input, args.time, args.corner)
    sites = _sites(args.sites, window) if args.sites else []
    options = SuggestOptions(
        budget=args.budget, frame=window.frame, unit=args.unit, rule=args.rule, noise=args.noise,
        tile=args.tile, sites=sites, radius=args.radius, k=args.k, seed=args.seed,
    )  # fmt: skip
    return denoiser, meta, sampler_plan(spec, method), window, options


def _write(out: Path, window, suggestion, options, args) -> dict:
    """suggestions.json, .csv and .png in ``out``; the JSON's content."""
    from incdyn.platform.suggest.figure import suggestion_figure

    out.mkdir(parents=True, exist_ok=True)
    picks = []
    index = {"y": "row", "x": "col", "y0": "row0", "x0": "col0", "y1": "row1", "x1": "col1"}
    for p in suggestion.picks:  # grid indices as row/col; the centre's coordinates by name
        pick = {index.get(k, k): v for k, v in p.items()}
        if "y" in p:
            pick[window.y_name] = float(window.y[p["y"]])
            pick[window.x_name] = float(window.x[p["x"]])
        picks.append(pick)
    result = {"model": args.model, "input": args.input, "time": window.time,
              "options": options.model_dump(mode="json"), "total_variance": suggestion.total,
              "picks": picks}  # fmt: skip
    (out / "suggestions.json").write_text(json.dumps(result, indent=1))
    with (out / "suggestions.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(picks[0]))
        writer.writeheader()
        writer.writerows(picks)
    title = f"{options.rule}: {options.budget} {options.unit}(s) at {window.time}"
    fig = suggestion_figure(
        suggestion.spread.numpy(), window.mask[window.frame], suggestion.picks, title
    )
    fig.savefig(out / "suggestions.png", dpi=110)
    return result


def run(args: argparse.Namespace) -> int:
    """Choose the units, print them and write the outputs."""
    import numpy as np
    import torch

    from incdyn.datasets.errors import UserError
    from incdyn.platform.suggest.window import suggest_window

    try:
        denoiser, meta, plan, window, options = _load(args)
    except ValueError as exc:  # a user's mistake: one line (cli.main)
        raise exc if isinstance(exc, UserError) else UserError(str(exc)) from None
    norm = meta["normalization"]
    mean = np.asarray(norm["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(1, -1, 1, 1)
    x = np.where(window.mask[:, None], (window.values - mean) / std, 0.0)
    start = time.perf_counter()
    try:
        suggestion = suggest_window(
            denoiser, plan, torch.from_numpy(x.transpose(1, 0, 2, 3).astype(np.float32)),
            torch.from_numpy(window.mask), options.request(window.values.shape[0]),
            domain=torch.from_numpy(window.domain), k=options.k,
            generator=torch.Generator().manual_seed(options.seed),
        )  # fmt: skip
    except ValueError as exc:  # a budget beyond the candidates, a frame outside the window
        raise UserError(str(exc)) from None
    seconds = time.perf_counter() - start
    result = _write(args.out, window, suggestion, options, args)
    print(f"{options.rule} rule, {options.budget} {options.unit}(s) at {window.time}; summed "
          f"variance {suggestion.total:.4g} (training-std units²); {seconds:.2f} s")  # fmt: skip
    for p in result["picks"]:
        where = {k: v for k, v in p.items() if k not in ("rank", "reduction", "remaining")}
        print(
            f"  {p['rank']:>3}  {where}  removes {p['reduction']:.4g}, leaves {p['remaining']:.4g}"
        )
    print(f"written: {args.out}/suggestions.json, .csv, .png")
    if args.mlflow:
        _log(args, result, seconds)
    return 0


def _log(args: argparse.Namespace, result: dict, seconds: float) -> None:
    import mlflow

    from incdyn.platform.tracking import resolve_tracking_uri

    mlflow.set_tracking_uri(resolve_tracking_uri(args.tracking_uri))
    mlflow.set_experiment(args.mlflow)
    with mlflow.start_run(run_name=f"suggest {result['options']['rule']}"):
        mlflow.log_params({"model": args.model, "input": args.input, "time": result["time"],
                           **result["options"]})  # fmt: skip
        mlflow.log_metric("total_variance", result["total_variance"])
        mlflow.log_metric("seconds", seconds)
        for p in result["picks"]:
            mlflow.log_metric("remaining_variance", p["remaining"], step=p["rank"])
        mlflow.log_artifacts(str(args.out), artifact_path="suggestions")
