"""End to end through a real local Ray: Ray Train with 2 DDP workers on CPU, MLflow records."""

from __future__ import annotations

import mlflow
import pytest
import torch
from conftest import tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.platform.checkpoint import load_denoiser, read_meta
from incdyn.platform.experiment.run import run_experiment
from incdyn.platform.spec import parse_spec
from incdyn.platform.tracking import (
    ROLE_EXPERIMENT,
    ROLE_METHOD,
    TAG_METHOD,
    TAG_PARENT,
    TAG_RESUMED,
    TAG_ROLE,
    TAG_TRAIN_RUN,
)
from incdyn.platform.train import driver as trainer

OURS = f"tags.`{TAG_METHOD}` = 'ours'"  # the runs of the method "ours"


# two DDP workers; the same spec (in a fresh folder) must repeat a run exactly
TINY = dict(
    methods=[
        {"name": "ours", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 3},
        {"name": "ns_inpaint", "kind": "inpaint_ns"},
    ],
    workers=2,
    experiment="tiny-test",
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("e2e")
    spec = parse_spec(tiny_spec(tmp=tmp, **TINY))
    rows = run_experiment(spec, progress=False)
    return tmp, spec, rows


def test_runs_metrics_and_checkpoint_in_mlflow(finished):
    _tmp, spec, rows = finished
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.get_experiment_by_name("tiny-test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_EXPERIMENT]
    children = [r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_METHOD]
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags[TAG_PARENT] == parents[0].info.run_id
        assert {"test_mse", "test_mse_unobserved"} <= set(child.data.metrics)
        assert child.data.params["training.steps"] == "6"
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "figures")}
        assert "figures/test_sample0.png" in artifacts
    ours = next(c for c in children if c.data.tags[TAG_METHOD] == "ours")
    curve = client.get_metric_history(ours.info.run_id, "train_loss")
    assert [m.step for m in curve] == [3, 6]  # logged live by rank 0 of the Ray Train workers
    assert client.get_metric_history(ours.info.run_id, "val_loss")
    ckpt = mlflow.artifacts.download_artifacts(
        run_id=ours.info.run_id, artifact_path="checkpoint", tracking_uri=spec.mlflow.tracking_uri
    )
    meta = read_meta(ckpt)
    assert meta["step"] == 6 and meta["spec"]["training"]["steps"] == 6
    model, _ = load_denoiser(ckpt)
    assert sum(p.numel() for p in model.parameters()) > 0
    by_name = {r["method"]: r for r in rows}
    assert by_name["ours"]["test_mse"] == pytest.approx(ours.data.metrics["test_mse"])


def test_two_workers_trained_with_ddp(finished):
    tmp, spec, _ = finished
    client = MlflowClient(spec.mlflow.tracking_uri)
    ours = client.search_runs([client.get_experiment_by_name("tiny-test").experiment_id], OURS)[0]
    assert ours.data.params["ray.num_workers"] == "2"
    # Ray Train wrote its checkpoints under the spec's storage path, named from the spec
    run_dir = tmp / "runs" / ours.data.tags[TAG_TRAIN_RUN]
    assert any(run_dir.glob("checkpoint_*"))


def test_rerun_resumes_finished_training_instead_of_restarting(finished, monkeypatch):
    _tmp, spec, _ = finished

    def no_worker_group(*args, **kwargs):
        raise AssertionError("a finished training started a Ray Train worker group again")

    # same spec: same Ray Train run name, found finished on disk without a worker group
    monkeypatch.setattr(trainer, "TorchTrainer", no_worker_group)
    rows = run_experiment(spec, progress=False)
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.get_experiment_by_name("tiny-test")
    latest = client.search_runs([exp.experiment_id], OURS, order_by=["start_time DESC"])[0]
    assert latest.data.tags.get(TAG_RESUMED) == "6"
    assert not client.get_metric_history(latest.info.run_id, "train_loss")  # no step retrained
    assert {r["method"] for r in rows} == {"ours", "ns_inpaint"}


def test_same_spec_and_seed_reproduce_the_run(finished, tmp_path):
    """A fresh run of the same spec (new store, new Ray storage, new MLflow store) repeats the
    first one exactly: initial weights, batches, partitions, noise and ensemble masks all
    follow the spec's seed."""
    first_tmp, spec, first_rows = finished
    again = parse_spec(tiny_spec(tmp=tmp_path, **TINY))
    rows = run_experiment(again, progress=False)

    def trained(s, tmp):
        client = MlflowClient(s.mlflow.tracking_uri)
        exp = client.get_experiment_by_name("tiny-test")
        run = client.search_runs([exp.experiment_id], OURS, order_by=["start_time ASC"])[0]
        ckpt = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id,
            artifact_path="checkpoint",
            tracking_uri=s.mlflow.tracking_uri,
            dst_path=str(tmp / f"ckpt-{run.info.run_id}"),
        )
        return load_denoiser(ckpt)[0].state_dict()

    a, b = trained(spec, first_tmp), trained(again, tmp_path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    score = {r["method"]: r["test_mse"] for r in rows}
    assert score == {r["method"]: r["test_mse"] for r in first_rows}
