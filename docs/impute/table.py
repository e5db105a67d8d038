"""The table of docs/impute.md: a COBE-SST2 region with cloud gaps, filled by a model, by DINEOF
(one reconstruction of the whole record) and by Telea, scored on held-out observed points (in
the shape of the record's own gaps) and, since the clouds were drawn on a complete record, on
the truth at the gaps.

    .venv/bin/python docs/impute/table.py --source PATH/cobe_sst2_monthly_1950-2009.nc \
        --model CHECKPOINT_OR_RUN --out docs/impute/table.md
    (--model omitted: DINEOF and Telea only)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the record builder of the tests

PERIOD = ("2000-01", "2009-12")
LAT, LON = (59.5, 20.5), (140.5, 235.5)


def main() -> None:
    from impute_records import cobe_region_with_clouds

    from incdyn.platform.impute.options import ImputeOptions
    from incdyn.platform.impute.runner import run_impute

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="the COBE-SST2 monthly record (netCDF)")
    ap.add_argument("--model", help="checkpoint dir, run id or models:/NAME (omit: none)")
    ap.add_argument("--out", default="docs/impute/table.md")
    ap.add_argument("--keep", help="directory to keep the input and outputs in (figure.py)")
    ap.add_argument("--holdout", type=float, default=0.1)
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    src = cobe_region_with_clouds(
        work / "cobe_clouds.nc", period=PERIOD, lat=LAT, lon=LON, source=args.source
    )
    truth = xr.open_dataset(args.source)
    truth = truth.sst.sel(time=slice(*PERIOD), lat=slice(*LAT), lon=slice(*LON)).values
    runs = [("model", args.model)] if args.model else []
    runs += [("dineof", None), ("telea", None)]
    lines = [
        f"| method | held-out RMSE (°C) | {0.9:.0%} interval coverage | RMSE at the cloud gaps vs "
        "truth (°C) | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    for method, model in runs:
        out = work / f"{method}.zarr"
        common = dict(input=src, out=str(out), holdout=args.holdout, overwrite=True)
        if method == "model":
            opts = ImputeOptions(model=model, actors=0, cpus_per_actor=2, **common)
        else:
            opts = ImputeOptions(model=None, method=method, variables=("sst",),
                                 dims=("time", "lat", "lon"), actors=0, **common)  # fmt: skip
        t = time.perf_counter()
        summary = run_impute(opts)
        wall = time.perf_counter() - t
        ds = xr.open_zarr(out)
        flag = ds.observed_flag.values
        filled = ds.sst.values
        gaps = (flag == 0) | (flag == 4)
        true_rmse = float(np.sqrt(np.nanmean((filled[gaps] - truth[gaps]) ** 2)))
        cover = summary.heldout_coverage.get("sst", float("nan"))
        name = {"model": f"model (K={summary_k(ds)})", "dineof": "DINEOF (whole record)",
                "telea": "Telea"}[method]  # fmt: skip
        cover_text = "–" if cover != cover else f"{cover:.1%}"
        lines.append(
            f"| {name} | {summary.heldout_rmse['sst']:.3f} | {cover_text} | {true_rmse:.3f} "
            f"| {wall:.0f} |"
        )
        print(lines[-1], flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def summary_k(ds: xr.Dataset) -> int:
    import json

    return int(json.loads(ds.attrs["incdyn_impute"])["k"])


if __name__ == "__main__":
    main()
