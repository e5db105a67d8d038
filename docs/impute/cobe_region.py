"""Write a North-Pacific region of the COBE-SST2 monthly record as a zarr (chunks of 12 months),
the record the model of docs/impute.md is trained on and the imputation table is made from.

    .venv/bin/python docs/impute/cobe_region.py --source PATH/cobe_sst2_monthly_1950-2009.nc \
        --out data/cobe_npac_record.zarr
"""

from __future__ import annotations

import argparse

import xarray as xr

LAT = (59.5, 20.5)  # north to south, as the record stores latitude
LON = (140.5, 235.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="the COBE-SST2 netCDF record")
    ap.add_argument("--out", default="data/cobe_npac_record.zarr")
    args = ap.parse_args()
    ds = xr.open_dataset(args.source)
    part = ds.sel(lat=slice(*LAT), lon=slice(*LON)).load()
    part = part.chunk({"time": 12})
    for v in part.variables.values():
        v.encoding = {}
    part.to_zarr(args.out, mode="w")
    print(f"wrote {args.out}: {dict(part.sizes)}")


if __name__ == "__main__":
    main()
