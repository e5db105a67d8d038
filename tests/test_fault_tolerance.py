"""Surviving faults: a killed worker, an interrupted save, a crashed run.

- A Ray Train worker process is killed from outside (SIGKILL) in the middle of a DDP run with
  ``ray.max_failures: 1``: Ray Train restarts the worker group, which resumes from the latest
  registered checkpoint and finishes; the MLflow run is tagged ``resumed_from_step`` and ends
  FINISHED.
- The same kill with ``ray.max_failures: 0`` fails the run; rerunning the same spec resumes.
- In a worker group shared by two trainings, a kill during the second one restarts the group,
  which skips the finished first training and resumes the second from its checkpoint.
- A checkpoint save interrupted at any point leaves the previous checkpoint whole and loadable.

To hit the middle of the run deterministically, the killer waits until rank 0 has reported a
given step (``$INCDYN_PROBE_DIR``, platform/train/probe.py), stops it (SIGSTOP: no further step or
checkpoint can happen), reads which checkpoint Ray Train has registered, then kills it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray.train
import torch
from conftest import tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.models.backbones.registry import build_denoiser
from incdyn.platform import checkpoint as ckpt_module
from incdyn.platform.checkpoint import CHECKPOINT_FILES, load_denoiser, read_meta, save_checkpoint
from incdyn.platform.experiment.run import run_experiment
from incdyn.platform.spec import parse_spec
from incdyn.platform.tracking import ROLE_METHOD, TAG_RESUMED, TAG_ROLE
from incdyn.platform.train.driver import run_name, storage_path
from incdyn.platform.train.group import TrainingJob, group_name
from incdyn.platform.train.probe import read_probes

STEPS, LOG_EVERY, CHECKPOINT_EVERY, KILL_AFTER = 16, 2, 4, 8


# the run of both kill tests; each sets its store, workers and max_failures
FAULTS = dict(
    name="faults",
    experiment="faults",
    steps=STEPS,
    log_every=LOG_EVERY,
    checkpoint_every=CHECKPOINT_EVERY,
    val_samples=2,
    cpus_per_worker=1,
    evaluation={"max_samples": 2, "figure": False},
)


class Killer(threading.Thread):
    """Kills rank 0's process once it has reported ``after_step``; records what was registered."""

    def __init__(self, probe_dir: Path, run_dir: Path, after_step: int) -> None:
        super().__init__(daemon=True)
        self.probe_dir, self.run_dir, self.after_step = probe_dir, run_dir, after_step
        self.killed_pid: int | None = None
        self.checkpoint_step: int | None = None  # latest checkpoint registered at the kill

    def due(self, rank0: dict) -> bool:
        return rank0["step"] >= self.after_step

    def run(self) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            rank0 = read_probes(self.probe_dir).get(0) if self.probe_dir.is_dir() else None
            if rank0 and self.due(rank0):
                os.kill(rank0["pid"], signal.SIGSTOP)
                time.sleep(3.0)  # let Ray Train register a checkpoint reported just before
                latest = ray.train.Result.from_path(str(self.run_dir)).checkpoint
                with latest.as_directory() as d:
                    self.checkpoint_step = read_meta(d)["step"]
                os.kill(rank0["pid"], signal.SIGKILL)
                self.killed_pid = rank0["pid"]
                return
            time.sleep(0.02)


def _start_killer(spec, tmp: Path, monkeypatch) -> Killer:
    probe_dir = tmp / "probe"
    monkeypatch.setenv("INCDYN_PROBE_DIR", str(probe_dir))
    run_dir = Path(storage_path(spec)) / run_name(spec, spec.methods[0])
    killer = Killer(probe_dir, run_dir, KILL_AFTER)
    killer.start()
    return killer


def _method_runs(spec) -> list:
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.get_experiment_by_name("faults")
    return client.search_runs(
        [exp.experiment_id],
        f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'",
        order_by=["start_time ASC"],
    )


def _logged_steps(spec, run) -> list[int]:
    history = MlflowClient(spec.mlflow.tracking_uri).get_metric_history(
        run.info.run_id, "train_loss"
    )
    return sorted(m.step for m in history)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Where the data set lives; the first run generates it, the others reuse it."""
    return tmp_path_factory.mktemp("faults-data") / "tiny.zarr"


def test_killed_worker_resumes_from_latest_checkpoint_and_finishes(
    tmp_path, store, ray_local, monkeypatch
):
    """Two DDP workers; rank 0 is killed, Ray Train restarts the group from the checkpoint."""
    spec = parse_spec(tiny_spec(tmp=tmp_path, store=store, workers=2, max_failures=1, **FAULTS))
    killer = _start_killer(spec, tmp_path, monkeypatch)
    run_experiment(spec, progress=False)
    killer.join(timeout=5)
    assert killer.killed_pid is not None, "the worker finished before it could be killed"
    resumed = killer.checkpoint_step
    assert CHECKPOINT_EVERY <= resumed < STEPS and resumed % CHECKPOINT_EVERY == 0

    (run,) = _method_runs(spec)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_RESUMED] == str(resumed)
    # every step logged, those up to the checkpoint once (resumed, not restarted)
    steps = _logged_steps(spec, run)
    assert set(steps) == set(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    assert all(steps.count(s) == 1 for s in range(LOG_EVERY, resumed + 1, LOG_EVERY))
    # the worker group that finished was a new one, started from the checkpoint
    rank0 = read_probes(tmp_path / "probe")[0]
    assert rank0["pid"] != killer.killed_pid
    assert rank0["start_step"] == resumed and rank0["step"] == STEPS
    final = ray.train.Result.from_path(str(killer.run_dir)).checkpoint
    with final.as_directory() as d:
        assert read_meta(d)["step"] == STEPS


def test_rerun_after_a_crashed_run_resumes_instead_of_restarting(
    tmp_path, store, ray_local, monkeypatch
):
    """One worker (cheaper), no retries: the kill fails the run; the same spec again resumes."""
    spec = parse_spec(tiny_spec(tmp=tmp_path, store=store, workers=1, max_failures=0, **FAULTS))
    killer = _start_killer(spec, tmp_path, monkeypatch)
    with pytest.raises(ray.train.TrainingFailedError):
        run_experiment(spec, progress=False)
    killer.join(timeout=5)
    assert killer.checkpoint_step is not None
    monkeypatch.delenv("INCDYN_PROBE_DIR")

    run_experiment(spec, progress=False)  # the same spec again: `incdyn run SPEC` twice
    crashed, rerun = _method_runs(spec)
    assert crashed.info.status == "FAILED"
    assert rerun.info.status == "FINISHED"
    # resumed from the newest whole checkpoint on disk: the one the killer saw reported, or one
    # the worker wrote after it before the kill landed (found on disk, not in Ray's snapshot)
    resumed = int(rerun.data.tags[TAG_RESUMED])
    assert killer.checkpoint_step <= resumed < STEPS
    steps = _logged_steps(spec, rerun)
    assert steps[0] == resumed + LOG_EVERY and steps[-1] == STEPS


class SecondTrainingKiller(Killer):
    """Kills rank 0 once it has reported ``after_step`` of the group's training ``second``."""

    def __init__(self, probe_dir: Path, run_dir: Path, after_step: int, second: str) -> None:
        super().__init__(probe_dir, run_dir, after_step)
        self.second = second

    def due(self, rank0: dict) -> bool:
        return rank0["train_run"] == self.second and super().due(rank0)


def test_killed_shared_group_skips_the_finished_training_and_resumes_the_other(
    tmp_path, store, ray_local, monkeypatch
):
    methods = [
        {"name": "ours", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 2},
        {"name": "missdiff", "ensemble": 1, "allow_zero_exposure": True,
         "partition": {"context_ratio": 1.0, "query_ratio": 1.0}},
    ]  # fmt: skip
    raw = tiny_spec(tmp=tmp_path, store=store, workers=1, max_failures=1, **FAULTS)
    spec = parse_spec({**raw, "methods": methods})
    jobs = [TrainingJob(spec, m, "", None) for m in spec.methods]
    run_dir = Path(storage_path(spec)) / group_name(jobs)
    monkeypatch.setenv("INCDYN_PROBE_DIR", str(tmp_path / "probe"))
    killer = SecondTrainingKiller(tmp_path / "probe", run_dir, KILL_AFTER, jobs[1].name)
    killer.start()
    run_experiment(spec, progress=False)
    killer.join(timeout=5)
    assert killer.killed_pid is not None, "the group finished before it could be killed"
    resumed = killer.checkpoint_step
    assert CHECKPOINT_EVERY <= resumed < STEPS

    first, second = _method_runs(spec)  # ours, then missdiff
    assert {first.info.status, second.info.status} == {"FINISHED"}
    assert TAG_RESUMED not in first.data.tags and second.data.tags[TAG_RESUMED] == str(resumed)
    # the first training was not trained again after the restart; the second resumed
    assert _logged_steps(spec, first) == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    steps = _logged_steps(spec, second)
    assert all(steps.count(s) == 1 for s in range(LOG_EVERY, resumed + 1, LOG_EVERY))
    rank0 = read_probes(tmp_path / "probe")[0]
    assert rank0["pid"] != killer.killed_pid
    assert rank0["start_step"] == resumed and rank0["step"] == STEPS


# -- atomic checkpoint writes ------------------------------------------------------------------


def _checkpoint(directory: Path, *, step: int, seed: int) -> torch.nn.Module:
    """A checkpoint as the training loop saves it (weights, optimiser, spec and method)."""
    spec = parse_spec(tiny_spec(store="x.zarr"))
    method = spec.methods[0]
    torch.manual_seed(seed)
    model = build_denoiser(spec.backbone_of(method), spec.schedule, channels=1, frames=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    optimizer = torch.optim.Adam(model.parameters())
    meta = {
        "spec": spec.to_dict(),
        "method": method.model_dump(mode="json"),
        "channels": ["u"],
        "frames": 2,
        "step": step,
    }
    save_checkpoint(directory, model=model, optimizer=optimizer, meta=meta)
    return model


def _assert_holds(directory: Path, model: torch.nn.Module, step: int) -> None:
    assert sorted(p.name for p in directory.iterdir()) == sorted(CHECKPOINT_FILES)
    loaded, meta = load_denoiser(directory)
    assert meta["step"] == step
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    torch.load(directory / "optimizer.pt", weights_only=True)


def _fail_on_call(n: int, real):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize(
    ("target", "call"),
    [
        ("torch.save", 1),  # while writing the weights
        ("torch.save", 2),  # weights written, optimiser state not
        ("os.replace", 1),  # everything written, not yet moved into place
        ("os.replace", 2),  # previous checkpoint set aside, new one not yet moved in
    ],
)
def test_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch, target, call):
    directory = tmp_path / "ckpt"
    previous = _checkpoint(directory, step=1, seed=0)
    module, name = target.split(".")
    owner = torch if module == "torch" else ckpt_module.os
    monkeypatch.setattr(owner, name, _fail_on_call(call, getattr(owner, name)))
    with pytest.raises(OSError, match="simulated"):
        _checkpoint(directory, step=2, seed=1)
    monkeypatch.undo()
    _assert_holds(directory, previous, step=1)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no staging left behind
    newer = _checkpoint(directory, step=3, seed=2)  # and the next save replaces it
    _assert_holds(directory, newer, step=3)


def _crash_before_rename(directory: Path) -> None:
    ckpt_module.os.replace = lambda *_: os._exit(1)  # the process dies: no clean-up runs
    _checkpoint(directory, step=2, seed=1)


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    directory = tmp_path / "ckpt"
    previous = _checkpoint(directory, step=1, seed=0)
    child = multiprocessing.get_context("fork").Process(
        target=_crash_before_rename, args=(directory,)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 1
    _assert_holds(directory, previous, step=1)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ckpt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ckpt.saving-")  # hidden, ignored
