"""``incdyn suggest`` on a record with its own gaps, land and an odd dimension order."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
import xarray as xr
from conftest import sea_surface_file

from incdyn.models.backbones.registry import build_denoiser
from incdyn.platform.checkpoint import save_checkpoint
from incdyn.platform.cli import main
from incdyn.platform.spec import parse_spec


def _checkpoint(tmp_path, url: str):
    spec = parse_spec(
        {
            "name": "suggest-cli",
            "data": {
                "source": "xarray",
                "params": {
                    "url": url,
                    "variables": ["sst"],
                    "window": 4,
                    "gaps": "real",
                    "dims": {"time": "t", "y": "lat", "x": "lon"},
                },
                "n_train": 4,
                "n_val": 2,
                "n_test": 2,
            },
            "methods": [{"name": "ours", "ensemble": 6}],
            "backbone": {"name": "unet", "width": 8, "mults": [1, 2], "blocks_per_level": 1},
            "evaluation": {"holdout": {"fraction": 0.1}},
        }
    ).to_dict()
    torch.manual_seed(0)
    model = build_denoiser(spec["backbone"], spec["schedule"], channels=1, frames=4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    meta = {"spec": spec, "method": spec["methods"][0], "channels": ["sst"], "frames": 4,
            "normalization": {"mean": [20.0], "std": [1.0]}, "step": 0, "grid": [12, 16]}  # fmt: skip
    return save_checkpoint(tmp_path / "ckpt", model=model, optimizer=None, meta=meta)


def test_suggest_ranks_unobserved_sea_points_of_the_frame(tmp_path, capsys):
    url = sea_surface_file(tmp_path / "sst.nc", gaps=True)
    ckpt = _checkpoint(tmp_path, url)
    out = tmp_path / "out"
    args = ["suggest", str(ckpt), "--input", url, "--time", "20", "--budget", "4"]
    assert main([*args, "--out", str(out)]) == 0
    result = json.loads((out / "suggestions.json").read_text())
    sst = xr.open_dataset(url)["sst"].sel(t=20).transpose("lat", "lon").values
    assert len(result["picks"]) == 4 and result["time"] == "20"
    for p in result["picks"]:
        assert np.isnan(sst[p["row"], p["col"]])  # a gap of that frame ...
        assert not (p["row"] < 3 and p["col"] < 4)  # ... at sea, not on land
        assert p["lat"] == xr.open_dataset(url)["lat"].values[p["row"]]
    reductions = [p["reduction"] for p in result["picks"]]
    assert all(r > 0 for r in reductions)
    with (out / "suggestions.csv").open() as f:
        assert [int(r["rank"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    assert (out / "suggestions.png").stat().st_size > 0
    assert "removes" in capsys.readouterr().out
    assert main([*args[:5], "99", *args[6:], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["incdyn: error: --time: 99 lies outside the record (0 … 39)"]
