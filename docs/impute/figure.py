"""The figure of docs/impute.md: one frame of a filled record — the input with its gaps, the
filled field, the ensemble spread (and the observation flag's held-out points).

    .venv/bin/python docs/impute/figure.py --input IN.nc --output OUT.zarr --frame 60 \
        --png docs/impute/frame.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--variable", default="sst")
    ap.add_argument("--frame", type=int, default=60)
    ap.add_argument("--png", default="docs/impute/frame.png")
    args = ap.parse_args()
    inp = xr.open_dataset(args.input)[args.variable].isel(time=args.frame)
    out = xr.open_zarr(args.output).isel(time=args.frame)
    v = args.variable
    filled, spread = out[v].values, out[f"{v}_spread"].values
    lo, hi = np.nanpercentile(filled, [1, 99])
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), constrained_layout=True)
    extent = [
        float(inp.lon.min()),
        float(inp.lon.max()),
        float(inp.lat.min()),
        float(inp.lat.max()),
    ]
    for ax, data, title, kw in (
        (axes[0], inp.values, "input (gaps and land NaN)", dict(vmin=lo, vmax=hi, cmap="RdYlBu_r")),
        (axes[1], filled, "filled", dict(vmin=lo, vmax=hi, cmap="RdYlBu_r")),
        (axes[2], spread, "ensemble spread", dict(cmap="magma")),
    ):
        flip = inp.lat.values[0] > inp.lat.values[-1]
        im = ax.imshow(
            data[::-1] if flip else data, origin="lower", extent=extent, aspect="auto", **kw
        )
        ax.set_title(f"{title}, {str(inp.time.values)[:7]}")
        fig.colorbar(im, ax=ax, label=inp.attrs.get("units", ""))
    fig.savefig(args.png, dpi=90)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
