"""A user's own netCDF file through ``incdyn run``: dims named and ordered as the file has them
(lon, t, lat), _FillValue gaps and a land region missing at every time, held-out evaluation.

The store has ``domain`` and ``holdout``; every method (ours, DINEOF, Telea) leaves the land NaN
in its logged imputation and is scored on held-out points only (real gaps hold no truth), and
its scores are finite: a land point in any score would make it NaN."""

from __future__ import annotations

import numpy as np
import yaml
from conftest import sea_surface_file, tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.datasets.store import open_split
from incdyn.platform.cli import main
from incdyn.platform.tracking import (
    ROLE_METHOD,
    TAG_METHOD,
    TAG_ROLE,
    TAG_SETTING,
    read_example,
)

METHODS = [
    {"name": "ours", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 2},
    {"name": "dineof", "kind": "dineof"},
    {"name": "telea", "kind": "telea"},
]


def test_a_netcdf_file_with_gaps_and_land_runs_end_to_end(tmp_path, ray_local, capsys):
    url = sea_surface_file(tmp_path / "sst.nc", gaps=True)
    spec = tiny_spec(tmp=tmp_path, name="own-data", methods=METHODS, n_train=8, p=None, steps=4)
    spec["data"] = {
        **spec["data"],
        "source": "xarray",
        "preset": "default",
        "params": {"url": url, "variables": ["sst"], "dims": {"time": "t", "y": "lat", "x": "lon"},
                   "window": 4, "stride": 2, "split": [0.5, 0.25, 0.25], "gaps": "real"},
    }  # fmt: skip
    spec["evaluation"] = {"figure": False, "holdout": {"fraction": 0.2, "patch": 3},
                          "verification": {"ks": [1, 2], "draws": 2, "draw_samples": 2}}  # fmt: skip
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(path)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if "| setting" in line)
    assert "test_heldout_mse" in header  # the table shows the score that exists

    store = spec["data"]["store"]
    for split in ("val", "test"):
        ds = open_split(store, split)
        assert {"domain", "holdout"} <= set(ds.data_vars) and "truth" not in ds
        domain = ds["domain"].values
        assert not domain[:3, :4].any() and domain.sum() == domain.size - 12  # the land
        assert not ds["mask"].values[..., ~domain].any()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("own-data")
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'")
    assert sorted(r.data.tags[TAG_METHOD] for r in runs) == ["dineof", "ours", "telea"]
    for r in runs:
        assert r.data.tags[TAG_SETTING] == "xarray real gaps"
        m = r.data.metrics
        assert np.isfinite(m["test_heldout_mse"]) and np.isfinite(m["val_heldout_mse"])
        assert "test_mse" not in m  # no truth in real gaps
        if r.data.tags[TAG_METHOD] == "ours":  # the ensemble verified on held-out points alone
            assert np.isfinite([m["test_crps_heldout"], m["val_spread_skill_heldout"]]).all()
            assert "test_crps" not in m
        imputed = read_example(client, r.info.run_id)["imputed"]  # (T, C, H, W)
        assert np.isnan(imputed[..., ~domain]).all(), r.data.tags[TAG_METHOD]
        assert np.isfinite(imputed[..., domain]).all(), r.data.tags[TAG_METHOD]


def test_a_complete_file_benchmarked_under_clouds_logs_truth_and_heldout_scores(
    tmp_path, ray_local
):
    """``gaps: benchmark``: the spec's cloud masks on top of a complete file (land still NaN);
    val/test keep the truth, so every method logs ``test_mse`` beside ``test_heldout_mse``."""
    url = sea_surface_file(tmp_path / "sst.nc", gaps=False)
    spec = tiny_spec(tmp=tmp_path, name="own-bench", methods=METHODS[1:], n_train=8, p=None)
    spec["data"] = {
        **spec["data"],
        "source": "xarray",
        "preset": "default",
        "params": {"url": url, "variables": ["sst"], "dims": ["t", "lat", "lon"], "window": 4,
                   "stride": 2, "split": [0.5, 0.25, 0.25], "gaps": "benchmark"},
        "observation": {"kind": "cloud", "p": 0.6, "scale": 2.0, "static": False},
    }  # fmt: skip
    spec["evaluation"] = {"figure": False, "holdout": {"fraction": 0.2, "patch": 3}}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(path)]) == 0
    test = open_split(spec["data"]["store"], "test")
    assert {"domain", "holdout", "truth"} <= set(test.data_vars)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("own-bench")
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'")
    assert sorted(r.data.tags[TAG_METHOD] for r in runs) == ["dineof", "telea"]
    for r in runs:
        m = r.data.metrics
        assert np.isfinite([m["test_mse"], m["test_heldout_mse"], m["val_heldout_mse"]]).all()
        assert np.isnan(read_example(client, r.info.run_id)["imputed"][..., :3, :4]).all()
