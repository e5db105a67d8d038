"""Ray Tune sweeps: a 2×2 ratio grid on a real 2-CPU Ray finishes, is tracked, and is reported."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import subprocess
import sys

import mlflow
import pytest
import yaml
from conftest import tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.platform.report import cli as report_cli
from incdyn.platform.report.tables import build_report
from incdyn.platform.spec import SpecError, parse_spec
from incdyn.platform.sweep.driver import run_sweep
from incdyn.platform.sweep.resources import TRIAL_CPU, plan_resources
from incdyn.platform.timings import is_timing
from incdyn.platform.tracking import (
    ROLE_SWEEP,
    ROLE_TRIAL,
    TAG_METHOD,
    TAG_PARENT,
    TAG_ROLE,
    TAG_SETTING,
    TAG_VARIANT,
)

EXPERIMENT = "sweep-test"


# tiny_spec's 16×16 grid, 4 frames, width-8 UNet, 6 steps: a trial is mostly Ray start-up
SWEEP = dict(
    name="tinysweep",
    methods=[
        {"name": "ns_inpaint", "kind": "inpaint_ns"},  # not swept: the first diffusion method is
        {"name": "ours", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 2},
    ],
    experiment=EXPERIMENT,
    evaluation={"figure": False},
)


# -- resources: concurrent trials must fit together (no fast Ray needed) ------------------


def test_two_cpus_run_two_one_worker_trials_that_fit_together():
    plan = plan_resources(
        num_workers=1, use_gpu=False, cpus_per_worker=None, n_trials=4, cluster_cpus=2
    )
    assert plan.concurrent == 2
    assert plan.concurrent * (plan.cpus_per_worker + TRIAL_CPU) <= 2


def test_configured_cpus_per_worker_limit_concurrency():
    plan = plan_resources(
        num_workers=2, use_gpu=False, cpus_per_worker=1.0, n_trials=8, cluster_cpus=8
    )
    assert (plan.concurrent, plan.cpus_per_worker) == (3, 1.0)  # 3 × (2 + 0.01) ≤ 8 < 4 × 2.01
    with pytest.raises(ValueError, match="cpus_per_worker"):
        plan_resources(
            num_workers=2, use_gpu=False, cpus_per_worker=2.0, n_trials=1, cluster_cpus=2
        )


def test_gpus_bound_concurrency_and_workers_fit_a_node():
    plan = plan_resources(
        num_workers=2, use_gpu=True, cpus_per_worker=None, n_trials=9,
        cluster_cpus=64, cluster_gpus=8, node_cpus=16, max_concurrent=3,
    )  # fmt: skip
    assert plan.concurrent == 3 and plan.cpus_per_worker <= 16 - TRIAL_CPU
    with pytest.raises(ValueError, match="GPUs"):
        plan_resources(
            num_workers=2,
            use_gpu=True,
            cpus_per_worker=None,
            n_trials=1,
            cluster_cpus=4,
            cluster_gpus=1,
        )


def test_bad_sweeps_fail_before_ray(tmp_path):
    spec = parse_spec(tiny_spec(tmp=tmp_path, **SWEEP))
    with pytest.raises(SpecError, match="context_ratio"):
        run_sweep(spec, context_ratios=[0.5, 1.5])
    with pytest.raises(ValueError, match="no diffusion method 'ns_inpaint'"):
        run_sweep(spec, method="ns_inpaint")
    with pytest.raises(SpecError, match="exposure audit"):  # (1, 1): MissDiff, never queried
        run_sweep(spec, context_ratios=[1.0], query_ratios=[1.0])
    with pytest.raises(ValueError, match="num_samples is for asha"):
        run_sweep(spec, num_samples=2)


# -- a real sweep ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("sweep")
    spec = parse_spec(tiny_spec(tmp=tmp, **SWEEP))
    client = MlflowClient(spec.mlflow.tracking_uri)
    client.create_experiment(EXPERIMENT, artifact_location=(tmp / "artifacts").as_uri())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        (result,) = run_sweep(
            spec, context_ratios=[0.5, 0.9], query_ratios=[0.5, 0.9], progress=False
        )
    mlflow.end_run()
    return spec, client, result, out.getvalue()


def _runs(client: MlflowClient, role: str) -> list:
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = '{role}'")


def test_sweep_leaves_a_parent_and_one_evaluated_child_per_trial(swept):
    spec, client, result, printed = swept
    (parent,) = _runs(client, ROLE_SWEEP)
    trials = _runs(client, ROLE_TRIAL)
    assert len(trials) == len(result.trials) == 4
    grid = {(t.data.params["context_ratio"], t.data.params["query_ratio"]) for t in trials}
    assert grid == {("0.5", "0.5"), ("0.5", "0.9"), ("0.9", "0.5"), ("0.9", "0.9")}
    for t in trials:
        assert t.info.status == "FINISHED"
        assert t.data.tags[TAG_PARENT] == parent.info.run_id
        assert t.data.tags[TAG_METHOD] == "ours" and t.data.tags[TAG_SETTING] == spec.setting
        metrics = {"val_loss", "val_mse", "train_loss", "test_mse", "test_mse_unobserved"}
        assert metrics <= set(t.data.metrics)
        assert t.data.params["method.partition.context_ratio"] == t.data.params["context_ratio"]
        assert t.data.params["ray.cpus_per_worker"] == "0.99"  # 2 trials at a time on 2 CPUs
        # where the trial's time went: phases that sum to its wall time, the worker's among them
        timed = {k: v for k, v in t.data.metrics.items() if is_timing(k) and k != "time_total_s"}
        assert sum(timed.values()) == pytest.approx(t.data.metrics["time_total_s"], rel=1e-6)
        assert {"time_steps_s", "time_train_overhead_s", "time_evaluation_s"} <= set(timed)
    assert "best configuration" in printed and result.best is not None


def test_best_configuration_is_the_lowest_criterion_and_is_logged(swept):
    spec, client, result, printed = swept
    trials = _runs(client, ROLE_TRIAL)
    # chosen on the spec's criterion: held-out observed points by default, not validation truth
    assert spec.evaluation.criterion == "val_heldout_mse"
    best = min(trials, key=lambda t: t.data.metrics[spec.evaluation.criterion])
    assert result.best.val_mse == pytest.approx(best.data.metrics["val_mse"])
    assert f"context_ratio={result.best.context_ratio:g}" in printed
    (parent,) = _runs(client, ROLE_SWEEP)
    assert parent.data.params["best.context_ratio"] == best.data.params["context_ratio"]
    assert parent.data.params["best.query_ratio"] == best.data.params["query_ratio"]
    assert parent.data.metrics["best_test_mse"] == pytest.approx(best.data.metrics["test_mse"])
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep.md", "best.json", "trials.json", "spec.yaml"} <= names
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert "figures/ratio_heatmap.png" in figures
    art = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/best.json")
    assert json.loads(art)["val_mse"] == pytest.approx(best.data.metrics["val_mse"])
    assert parent.data.metrics["best_val_mse"] == pytest.approx(best.data.metrics["val_mse"])


def test_report_on_the_sweep_prints_the_stored_metrics(swept, tmp_path, capsys):
    spec, client, _, _ = swept
    parser = argparse.ArgumentParser()
    report_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["report", EXPERIMENT, "--tracking-uri", spec.mlflow.tracking_uri, "--out", str(tmp_path)]
    )
    assert report_cli.run(args) == 0
    printed = capsys.readouterr().out
    stored = {
        t.data.tags[TAG_VARIANT]: t.data.metrics["test_mse"] for t in _runs(client, ROLE_TRIAL)
    }
    for variant, value in stored.items():
        assert f"| ours [{variant}] | " in printed and f"{value:.4g} (n=1)" in printed
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert {r["method"]: float(r["mean"]) for r in rows} == {
        f"ours [{v}]": x for v, x in stored.items()
    }
    report = build_report(EXPERIMENT, tracking_uri=spec.mlflow.tracking_uri)
    assert report.columns == [spec.setting]
    (parent,) = _runs(client, ROLE_SWEEP)
    assert "report.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}


# -- ASHA: trials stopped early free their resources; own Ray, dashboard on ---


@pytest.mark.slow
def test_asha_sweep_stops_trials_early_and_finishes(tmp_path):
    spec = tiny_spec(tmp=tmp_path, steps=12, **SWEEP)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    client = MlflowClient(spec["mlflow"]["tracking_uri"])
    client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    code = (
        "import sys, ray; from incdyn.platform.spec import load_spec; "
        "from incdyn.platform.sweep.driver import run_sweep; "
        "ray.init(address='local', num_cpus=2, logging_level='ERROR'); "
        f"(r,) = run_sweep(load_spec({str(path)!r}), mode='asha', num_samples=4, grace_period=3, "
        "context_ratios=[0.3, 0.9], query_ratios=[0.3, 0.9], progress=False); "
        "ray.shutdown(); sys.exit(0 if r.best else 1)"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=540, env=env
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "best configuration" in out.stdout
    trials = _runs(client, ROLE_TRIAL)
    assert len(trials) == 4 and all(t.info.status in ("FINISHED", "KILLED") for t in trials)
