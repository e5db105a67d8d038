"""End to end: every child run of ``incdyn run`` logs where its wall time went, and the
checkpoints' validation imputation curve (``training.val_imputation``)."""

from __future__ import annotations

import time

import pytest
from conftest import tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.platform.experiment.run import run_experiment
from incdyn.platform.spec import parse_spec
from incdyn.platform.timings import is_timing
from incdyn.platform.tracking import ROLE_EXPERIMENT, ROLE_METHOD, TAG_METHOD, TAG_ROLE

METHODS = [{"name": "ours", "ensemble": 2}, {"name": "ns_inpaint", "kind": "inpaint_ns"}]
WORKER_PHASES = {"worker_setup", "steps", "validation", "checkpoint_save", "val_imputation",
                 "curve_logging", "report"}  # fmt: skip


@pytest.fixture(scope="module")
def timed(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("timed")
    raw = tiny_spec(tmp=tmp, methods=METHODS, experiment="timed", training={"val_imputation": True})
    spec = parse_spec(raw)
    t0 = time.perf_counter()
    run_experiment(spec, progress=False, verbose=False)
    wall = time.perf_counter() - t0
    client = MlflowClient(spec.mlflow.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("timed").experiment_id])
    return client, runs, wall


def _phases(run) -> dict[str, float]:
    m = run.data.metrics
    return {k[5:-2]: v for k, v in m.items() if is_timing(k) and k != "time_total_s"}


def test_every_child_run_logs_phases_that_sum_to_its_wall_time(timed):
    _client, runs, wall = timed
    children = [r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_METHOD]
    assert len(children) == 2
    for child in children:
        m, phases = child.data.metrics, _phases(child)
        assert sum(phases.values()) == pytest.approx(m["time_total_s"], rel=1e-6)
        assert all(v >= 0 for v in phases.values())
        assert m["seconds"] <= m["time_total_s"] <= wall
        # the MLflow run lasted at least as long as the phases logged before it ended
        lasted = (child.info.end_time - child.info.start_time) / 1000
        assert m["time_total_s"] - phases["mlflow_start"] <= lasted + 0.1
    ours = next(c for c in children if c.data.tags[TAG_METHOD] == "ours")
    phases = _phases(ours)
    assert WORKER_PHASES | {"train_overhead", "evaluation", "checkpoint_artifacts"} <= set(phases)
    assert phases["steps"] > 0 and phases["evaluation"] > 0


def test_parent_run_logs_data_and_methods_time(timed):
    _client, runs, wall = timed
    parent = next(r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_EXPERIMENT)
    m = parent.data.metrics
    children = sum(
        r.data.metrics["time_total_s"] for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_METHOD
    )
    assert children <= m["time_methods_s"] <= m["time_total_s"] <= wall
    assert m["time_data_s"] > 0 and "time_ray_start_s" in m


def test_checkpoints_log_the_validation_imputation_curve(timed):
    client, runs, _wall = timed
    ours = next(r for r in runs if r.data.tags.get(TAG_METHOD) == "ours")
    curve = client.get_metric_history(ours.info.run_id, "ckpt_val_mse")
    assert [p.step for p in curve] == [3, 6]  # checkpoint_every 3 of 6 steps
    assert all(p.value > 0 for p in curve)
    assert not client.get_metric_history(ours.info.run_id, "time_steps_s")[0].step  # not a curve
