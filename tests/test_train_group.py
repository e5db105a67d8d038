"""A data setting's diffusion trainings in one Ray Train worker group, on a real local Ray:
every method × seed trained once, the weights a fit of its own gives, checkpoints kept per
training, found finished on a rerun, and a part-trained training resumed from the group's."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import tiny_spec
from mlflow.tracking import MlflowClient
from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME

from incdyn.platform.checkpoint import load_denoiser, read_meta
from incdyn.platform.experiment.run import run_experiment
from incdyn.platform.spec import parse_spec
from incdyn.platform.tracking import (
    ROLE_METHOD,
    TAG_METHOD,
    TAG_RESUMED,
    TAG_ROLE,
    TAG_SEED,
    TAG_TRAIN_RUN,
)
from incdyn.platform.train import driver, group
from incdyn.platform.train.driver import run_name, train_method
from incdyn.platform.train.group import GROUP_MARK, TrainingJob, stored_checkpoints, train_jobs
from incdyn.platform.train.stored import repair_snapshot

METHODS = [
    {"name": "ours", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 2},
    {"name": "ours_k1", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 1},
    {
        "name": "missdiff",
        "partition": {"context_ratio": 1.0, "query_ratio": 1.0},
        "ensemble": 1,
        "allow_zero_exposure": True,
    },
]


def _spec(tmp, **ray):
    """One CPU per worker, whatever is free: the weights compared across fits depend on the
    thread count."""
    raw = tiny_spec(tmp=tmp, name="grouped", methods=METHODS, seeds=[0, 1],
                    evaluation={"figure": False}, cpus_per_worker=1)  # fmt: skip
    raw["ray"].update(ray)
    return parse_spec(raw)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory, ray_local):
    """Two seeds × (ours, ours_k1 sharing its weights, missdiff): 4 trainings, one group."""
    tmp = tmp_path_factory.mktemp("grouped")
    spec = _spec(tmp)
    rows = run_experiment(spec, progress=False)
    trainings = [(s, m) for s in (0, 1) for m in ("ours", "missdiff")]
    names = [run_name(spec.model_copy(update={"seed": s}), spec.method(m)) for s, m in trainings]
    return tmp, spec, rows, names


def _child_runs(spec):
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment_name)
    return client, client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'")


def test_every_training_of_the_setting_ran_in_one_worker_group(grouped):
    tmp, spec, rows, names = grouped
    folders = sorted(p.name for p in (tmp / "runs").iterdir() if p.is_dir())
    assert [f for f in folders if GROUP_MARK in f] == folders[:1] and len(folders) == 1
    found = stored_checkpoints(tmp / "runs", names)
    assert {n: step for n, (step, _) in found.items()} == {n: 6 for n in names}
    # kept: every training's final checkpoint and the latest one (the last training's step 3)
    kept = sorted(p.name for p in (tmp / "runs" / folders[0]).glob("*-step*"))
    assert kept == sorted([f"{n}-step0000006" for n in names] + [f"{names[-1]}-step0000003"])
    assert len(rows) == 6 and all(r["test_mse"] > 0 for r in rows)
    client, children = _child_runs(spec)
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        method, seed = child.data.tags[TAG_METHOD], int(child.data.tags[TAG_SEED])
        seeded = spec.model_copy(update={"seed": seed})
        assert child.data.tags[TAG_TRAIN_RUN] == run_name(seeded, spec.method(method))
        curve = client.get_metric_history(child.info.run_id, "train_loss")
        if method == "ours_k1":  # shares ours' weights: trained once, in ours' run
            assert child.data.tags[TAG_RESUMED] == "6" and not curve
        else:
            assert [m.step for m in curve] == [3, 6] and TAG_RESUMED not in child.data.tags
            m = child.data.metrics
            assert m["time_worker_setup_s"] > 0 and m["time_train_overhead_s"] > 0
            # phases sum to the run's own total: the other trainings' time is not in it
            phases = sum(v for k, v in m.items() if k.startswith("time_") and k != "time_total_s")
            assert phases == pytest.approx(m["time_total_s"], rel=1e-6)


def test_grouped_weights_equal_those_of_a_fit_of_their_own(grouped, tmp_path):
    """The last training of the group (missdiff, seed 1: three trainings ran before it in the
    same worker process) against a fit of its own in a fresh storage path."""
    tmp, spec, _, names = grouped
    seeded = _spec(tmp).model_copy(update={"seed": 1})
    alone = seeded.model_copy(
        update={"ray": seeded.ray.model_copy(update={"storage_path": str(tmp_path / "runs")})}
    )
    result = train_method(
        alone, alone.method("missdiff"), store_url=str(tmp / "tiny.zarr"),
        tracking_uri=spec.mlflow.tracking_uri, run_id=None,
    )  # fmt: skip
    _, in_group = stored_checkpoints(tmp / "runs", names)[names[-1]]
    a, _ = load_denoiser(result.checkpoint.path)
    b, _ = load_denoiser(in_group.path)
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), key


def test_rerun_finds_every_grouped_training_finished(grouped, monkeypatch):
    tmp, spec, _, names = grouped

    def no_worker_group(*args, **kwargs):
        raise AssertionError("a finished training started a Ray Train worker group again")

    monkeypatch.setattr(group, "TorchTrainer", no_worker_group)
    monkeypatch.setattr(driver, "TorchTrainer", no_worker_group)
    client = MlflowClient(spec.mlflow.tracking_uri)
    experiment_id = client.get_experiment_by_name(spec.experiment_name).experiment_id
    jobs = [
        TrainingJob(seeded, seeded.method(m), str(tmp / "tiny.zarr"),
                    client.create_run(experiment_id).info.run_id)
        for seeded in (spec.model_copy(update={"seed": s}) for s in (0, 1))
        for m in ("ours", "ours_k1", "missdiff")
    ]  # fmt: skip
    trained = train_jobs(jobs, tracking_uri=spec.mlflow.tracking_uri)
    assert sorted(trained) == sorted(names)
    assert all(t.phases == {"train_overhead": 0.0} for t in trained.values())
    for job in jobs:
        assert client.get_run(job.run_id).data.tags[TAG_RESUMED] == "6"
        assert read_meta(trained[job.name].checkpoint.path)["train_run"] == job.name


def test_a_part_trained_training_resumes_from_the_groups_checkpoint(grouped, tmp_path):
    """The group keeps the last training's step-3 checkpoint: a fit of that training elsewhere,
    handed it, trains steps 4-6 only."""
    tmp, spec, _, names = grouped
    step3 = (
        tmp / "runs" / next(p.name for p in (tmp / "runs").iterdir()) / f"{names[-1]}-step0000003"
    )
    seeded = _spec(tmp).model_copy(update={"seed": 1})
    alone = seeded.model_copy(
        update={"ray": seeded.ray.model_copy(update={"storage_path": str(tmp_path / "runs")})}
    )
    client = MlflowClient(spec.mlflow.tracking_uri)
    run_id = client.create_run(client.get_experiment_by_name(spec.experiment_name).experiment_id)
    run_id = run_id.info.run_id
    train_method(
        alone, alone.method("missdiff"), store_url=str(tmp / "tiny.zarr"),
        tracking_uri=spec.mlflow.tracking_uri, run_id=run_id, resume_from=str(step3),
    )  # fmt: skip
    assert client.get_run(run_id).data.tags[TAG_RESUMED] == "3"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [6]


def test_an_unreadable_snapshot_hides_no_checkpoint_and_is_set_aside_before_a_fit(grouped):
    """A snapshot cut short mid-write: checkpoints are read from disk all the same, and the
    folder's next fit finds the snapshot set aside (one warning) instead of failing."""
    tmp, _spec, _, names = grouped
    broken = tmp / "runs" / f"grouped{GROUP_MARK}0000000000"
    broken.mkdir()
    try:
        (broken / CHECKPOINT_MANAGER_SNAPSHOT_FILENAME).write_text("{not json")
        found = stored_checkpoints(tmp / "runs", names)
        assert {n: step for n, (step, _) in found.items()} == {n: 6 for n in names}
        with pytest.warns(UserWarning, match="snapshot cannot be read"):
            assert repair_snapshot(broken) is not None
        assert not (broken / CHECKPOINT_MANAGER_SNAPSHOT_FILENAME).exists()
        assert repair_snapshot(tmp / "runs" / next(iter(group_folders(tmp)))) is None
    finally:
        shutil.rmtree(broken)


def group_folders(tmp):
    return [
        p.name
        for p in (tmp / "runs").iterdir()
        if GROUP_MARK in p.name and "0000000000" not in p.name
    ]
