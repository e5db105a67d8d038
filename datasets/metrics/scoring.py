"""``score(...)``: the data set's own metric beside MSE, used by every method and baseline.

- Shallow Water (App. G.1): the PDE residual ("feasibility loss") of the reconstructed
  ``(u, v, h)`` series, always beside the ground truth's own residual.
- Advection: reconstruct the first frame, run the exact solver over all frames, MSE to truth.
- Navier–Stokes and ERA5: MSE over all and unobserved points (:mod:`incdyn.datasets.metrics.squared_error`);
  ERA5 also latitude-weighted RMSE per variable (WeatherBench2's convention), physical units.
Per-sample values are returned so that shards can be merged by the caller.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from incdyn.datasets.metrics.physics import advection_forward_mse, shallow_water_residual

PARAMS = {"shallow_water": ("f", "g", "H"), "advection": ("ax", "ay"), "era5": ()}


def physics_context(split: xr.Dataset, source: str) -> dict | None:
    """What :func:`score` needs from a split (coordinates, per-sample parameters), or None."""
    if source not in PARAMS:
        return None
    return {
        "source": source,
        "time": split["time"].values.astype(np.float64),
        "y": split["y"].values.astype(np.float64),
        "x": split["x"].values.astype(np.float64),
        "params": {p: split[p].values.astype(np.float64) for p in PARAMS[source]},
        "channels": [str(c) for c in split["channel"].values],
    }


def latitude_weighted_rmse(
    imputed: np.ndarray, truth: np.ndarray, latitude_deg: np.ndarray, channels: list[str]
) -> dict[str, np.ndarray]:
    """WeatherBench2's RMSE per variable: squared errors weighted by cos(latitude), the weights
    normalised to mean 1 over the latitudes, averaged over time and longitude, then the root."""
    weights = np.cos(np.deg2rad(latitude_deg))
    weights = weights / weights.mean()
    sq = (imputed.astype(np.float64) - truth) ** 2 * weights[None, None, None, :, None]
    rmse = np.sqrt(sq.mean(axis=(1, 3, 4)))  # (N, C)
    return {f"rmse_{name}": rmse[:, i] for i, name in enumerate(channels)}


def score(
    imputed: np.ndarray, truth: np.ndarray, indices: np.ndarray, context: dict | None
) -> dict[str, np.ndarray]:
    """Per-sample physics metrics of ``imputed`` vs ``truth`` (both ``(N, T, C, H, W)`` physical).

    ``indices`` are the samples' positions in the split (to look up their parameters).
    Returns ``{}`` for data sets whose metric is MSE alone.
    """
    if context is None:
        return {}
    p = {k: torch.from_numpy(v[indices]) for k, v in context["params"].items()}
    t, y, x = context["time"], context["y"], context["x"]
    dy, dx = float(y[1] - y[0]), float(x[1] - x[0])
    if context["source"] == "era5":
        return latitude_weighted_rmse(imputed, truth, y, context["channels"])
    if context["source"] == "shallow_water":
        dt = float(t[1] - t[0])
        res = shallow_water_residual(
            torch.from_numpy(imputed).double(), p["f"], p["g"], p["H"], dt, dx, dy
        )
        res_truth = shallow_water_residual(
            torch.from_numpy(truth).double(), p["f"], p["g"], p["H"], dt, dx, dy
        )
        return {"feasibility": res.numpy(), "feasibility_truth": res_truth.numpy()}
    domain = (dy * len(y), dx * len(x))
    mse = advection_forward_mse(
        torch.from_numpy(imputed[:, 0, 0]).double(),
        torch.from_numpy(truth[:, :, 0]).double(),
        p["ax"],
        p["ay"],
        torch.from_numpy(t),
        domain,
    )
    return {"forward_mse": mse.numpy()}
