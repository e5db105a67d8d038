"""One spec, all seven methods, one finished MLflow run each with the same metric keys."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.platform.experiment.run import run_experiment
from incdyn.platform.spec import load_spec
from incdyn.platform.tracking import ROLE_METHOD, TAG_METHOD, TAG_ROLE

SPEC = Path(__file__).resolve().parents[1] / "experiments" / "all_methods.yaml"


def test_every_method_gets_a_finished_run_with_common_metrics(tmp_path, ray_local):
    # the tiny spec's data sizes, backbone, training and paths; the file's masks and methods
    small = tiny_spec(
        tmp=tmp_path, n_train=8, steps=2, log_every=2, checkpoint_every=2, val_samples=2
    )
    data = {key: value for key, value in small["data"].items() if key != "observation"}
    tiny = [
        *(f"data.{key}={json.dumps(value)}" for key, value in data.items()),
        f"backbone={json.dumps(small['backbone'])}",  # the whole section: no circular padding
        f"training={json.dumps(small['training'])}",  # the whole section: default lr, no warm-up
        f"ray.storage_path={small['ray']['storage_path']}",
        f"mlflow.tracking_uri={small['mlflow']['tracking_uri']}",
        "evaluation.figure=false",
        "methods.missdiff.sampler.steps=3",
        "methods.ambientdiff.sampler.steps=3",
        "methods.ours_multi.sampler.steps=3",
        "methods.ours_single.ensemble=3",
        "methods.ours_multi.ensemble=3",
    ]
    spec = load_spec(SPEC, tiny)
    assert len(spec.methods) == 7
    run_experiment(spec, progress=False)
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment_name)
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'")
    assert sorted(r.data.tags[TAG_METHOD] for r in runs) == sorted(m.name for m in spec.methods)
    common = {"test_mse", "test_mse_unobserved", "seconds"}
    for r in runs:
        assert r.info.status == "FINISHED"
        assert common <= set(r.data.metrics), r.data.tags[TAG_METHOD]
    best = [r for r in runs if r.data.tags[TAG_METHOD] in ("missdiff", "ambientdiff")]
    for r in best:  # the paper's rule, chosen on the validation split: the better sampler there
        m = r.data.metrics
        chosen = "multi" if m["sampler_used"] == 1.0 else "single"
        assert m["val_mse"] == min(m["val_mse_single"], m["val_mse_multi"])
        assert m["val_mse"] == m[f"val_mse_{chosen}"]
        assert "test_mse_single" not in m and "test_mse_multi" not in m  # test imputed once
