"""Builders for the ``incdyn impute`` tests: records with real gaps, and a tiny checkpoint that
reads them (random weights: the tests check the layout of the fill, not its skill)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from conftest import tiny_spec

GAPPY_SHAPE = (20, 14, 18)  # frames, latitudes, longitudes of :func:`gappy_file`


def gappy_file(path: Path) -> str:
    """A netCDF record in the odd order (lon, when, lat) with descending latitude, int16
    packing with ``_FillValue``, land (lat index < 3, lon index < 4) missing at every time and
    moving cloud gaps: ``sst`` in degC and ``sss`` in psu."""
    frames, nlat, nlon = GAPPY_SHAPE
    rng = np.random.default_rng(1)
    when = np.arange(frames)
    lat = np.linspace(30, 10, nlat)  # north to south
    lon = np.linspace(120, 150, nlon)
    pattern = np.sin(lat[None, :] / 5 + lon[:, None] / 8)
    sst = 20 + 2 * pattern[:, None, :] * np.cos(when / 6)[None, :, None]
    sss = 34 + 0.5 * pattern[:, None, :] * np.sin(when / 5)[None, :, None]
    clouds = rng.random(sst.shape) < 0.3
    for a in (sst, sss):
        a[clouds] = np.nan
        a[:4, :, :3] = np.nan
    sst[:, 7, :] = np.nan  # one frame with no observed point
    sss[:, 7, :] = np.nan
    ds = xr.Dataset(
        {
            "sst": (("lon", "when", "lat"), sst, {"units": "degC", "long_name": "sea temp"}),
            "sss": (("lon", "when", "lat"), sss, {"units": "psu"}),
        },
        coords={
            "lon": ("lon", lon, {"units": "degrees_east"}),
            "when": ("when", when, {"long_name": "month index"}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
        },
        attrs={"title": "gappy test record", "history": "made by a test"},
    )
    packing = {"dtype": "int16", "scale_factor": 0.001, "add_offset": 20.0, "_FillValue": -32767}
    ds.to_netcdf(path, encoding={"sst": packing, "sss": {**packing, "add_offset": 34.0}})
    return str(path)


def tiny_checkpoint(
    directory: Path,
    *,
    variables: list[str],
    dims: list[str],
    frames: int = 4,
    grid: tuple[int, int] = (8, 8),
    url: str = "unused.nc",
    ensemble: int = 3,
    mean: float = 20.0,
    std: float = 2.0,
) -> Path:
    """A checkpoint of a width-8 UNet (seeded random weights) for ``variables`` read with
    ``dims``, windows of ``frames`` and a ``grid`` tile."""
    import torch

    from incdyn.models.backbones.registry import build_denoiser
    from incdyn.platform.checkpoint import save_checkpoint
    from incdyn.platform.spec import parse_spec

    raw = tiny_spec(
        store=str(directory / "unused.zarr"),
        methods=[{"name": "ours", "ensemble": ensemble}],
        data={
            "source": "xarray",
            "params": {"url": url, "variables": variables, "dims": dims, "window": frames},
        },
    )
    spec = parse_spec(raw)
    method = spec.methods[0]
    den = build_denoiser(
        spec.backbone_of(method), spec.schedule, channels=len(variables), frames=frames, seed=0
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # outputs that depend on the input and on the context masks
        for p in den.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    meta = {
        "normalization": {"mean": [mean] * len(variables), "std": [std] * len(variables)},
        "method": method.model_dump(mode="json"),
        "channels": list(variables),
        "frames": frames,
        "grid": list(grid),
        "spec": raw,
        "store": raw["data"]["store"],
    }
    return save_checkpoint(directory, model=den, optimizer=None, meta=meta)


COBE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
COBE_FILE = COBE / "cobe_sst2_monthly_1950-2009.nc"


def cobe_region_with_clouds(
    path: Path,
    *,
    period: tuple[str, str] = ("1990-01", "1991-12"),
    lat: tuple[float, float] = (45.0, 20.0),
    lon: tuple[float, float] = (115.0, 145.0),
    observed: float = 0.6,
    seed: int = 0,
    source: str | Path = COBE_FILE,
) -> str:
    """A region of the COBE-SST2 record (land NaN) with moving cloud gaps drawn on top, written
    as netCDF with the record's own int16 packing, attributes and coordinates."""
    import torch

    from incdyn.datasets.masks import MaskFamily, cloud_masks

    ds = xr.open_dataset(source)
    part = ds.sel(time=slice(*period), lat=slice(*lat), lon=slice(*lon)).load()
    t, h, w = part.sst.shape
    family = MaskFamily(kind="cloud", p=observed, scale=2.0)
    masks = cloud_masks(family, t, h, w, torch.Generator().manual_seed(seed)).numpy()
    part["sst"] = part.sst.where(masks)
    enc = {k: v for k, v in ds.sst.encoding.items() if k in ("dtype", "scale_factor", "_FillValue")}
    part.to_netcdf(path, encoding={"sst": enc})
    return str(path)
