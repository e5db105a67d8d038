"""A killed experiment resumes and leaves nothing behind: a half-written checkpoint is never
loaded, a Ray Train snapshot that names a checkpoint gone from disk does not stop the rerun (it
resumes from the newest whole one), and a driver killed by SIGKILL leaves no run ``RUNNING`` and
no second model version once the same spec has run again."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray.train
import torch
import yaml
from conftest import tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.models.backbones.registry import build_denoiser
from incdyn.platform.checkpoint import MANIFEST, is_complete, load_denoiser, save_checkpoint
from incdyn.platform.data_prep import ensure_data
from incdyn.platform.experiment.run import run_experiment
from incdyn.platform.ghosts import TAG_REPLACED_BY
from incdyn.platform.kill_points import KILL_ENV
from incdyn.platform.registry.publish import TAG_TRAINING
from incdyn.platform.spec import parse_spec
from incdyn.platform.tracking import TAG_RESUMED, TAG_ROLE
from incdyn.platform.train.driver import run_name, storage_path, train_method
from incdyn.platform.train.group import TrainingJob, train_jobs
from incdyn.platform.train.stored import SNAPSHOT, snapshot_names, stored_checkpoints
from incdyn.platform.train.worker import newest, restore


def _save(
    directory: Path, *, step: int, train_run: str = "tiny-0123456789", **extra
) -> torch.nn.Module:
    spec = parse_spec(tiny_spec(store="x.zarr"))
    method = spec.methods[0]
    model = build_denoiser(spec.backbone_of(method), spec.schedule, channels=1, frames=2)
    meta = {"spec": spec.to_dict(), "method": method.model_dump(mode="json"), "channels": ["u"],
            "frames": 2, "step": step, "train_run": train_run, **extra}  # fmt: skip
    save_checkpoint(
        directory, model=model, optimizer=torch.optim.Adam(model.parameters()), meta=meta
    )
    return model


@pytest.mark.parametrize("cut", ["no manifest", "truncated weights", "no weights"])
def test_a_half_copied_checkpoint_is_never_loaded(tmp_path, cut):
    """What a kill during Ray Train's copy into storage leaves: some files, or a file cut short."""
    run = tmp_path / "tiny-0123456789"
    _save(run / "checkpoint_a", step=2)
    half = run / "checkpoint_b"
    _save(half, step=4)
    if cut == "no manifest":
        (half / MANIFEST).unlink()
    elif cut == "truncated weights":
        (half / "model.pt").write_bytes((half / "model.pt").read_bytes()[:100])
    else:
        (half / "model.pt").unlink()
    assert not is_complete(half) and is_complete(run / "checkpoint_a")
    with pytest.raises(ValueError, match="incomplete checkpoint"):
        load_denoiser(half)
    with pytest.warns(UserWarning, match="incomplete checkpoint"):
        found = stored_checkpoints(tmp_path, [run.name])
    step, checkpoint = found[run.name]
    assert step == 2 and Path(checkpoint.path) == run / "checkpoint_a"
    with pytest.warns(UserWarning, match="incomplete checkpoint"):
        chosen = newest(
            ray.train.Checkpoint(str(half)), ray.train.Checkpoint(str(run / "checkpoint_a"))
        )
    assert Path(chosen.path) == run / "checkpoint_a"


def test_a_resume_on_other_cpu_threads_warns_that_its_weights_will_differ(tmp_path, recwarn):
    """torch's sums depend on the thread count: a checkpoint written on another number of threads
    than the resuming worker's is restored (weights and step) with a warning; on the same number,
    silently."""
    spec = parse_spec(tiny_spec(store="x.zarr"))
    threads = torch.get_num_threads()
    for written, warns in ((threads, False), (threads + 1, True)):
        folder = tmp_path / f"checkpoint_{written}"
        saved = _save(folder, step=4, threads=written)
        model = build_denoiser(spec.backbone_of(spec.methods[0]), spec.schedule, channels=1,
                               frames=2)  # fmt: skip
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        optimizer = torch.optim.Adam(model.parameters())
        recwarn.clear()
        step = restore(ray.train.Checkpoint(str(folder)), model, optimizer, "cpu")
        messages = [str(w.message) for w in recwarn if "CPU threads" in str(w.message)]
        assert step == 4 and len(messages) == int(warns), messages
        for a, b in zip(model.state_dict().values(), saved.state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_a_checkpoint_the_snapshot_names_but_is_gone_resumes_from_the_newest_remaining(
    tmp_path, ray_local
):
    """A kill between retention's deletion and the snapshot's update: the snapshot still names
    the deleted checkpoint (and a newer copy was cut short). The rerun sets the snapshot aside,
    passes over the half copy and resumes from the newest whole checkpoint, with the weights an
    uninterrupted run gives. Both runs take one CPU: the thread count changes torch's reductions,
    and without ``cpus_per_worker`` each takes the CPUs free at its start."""
    spec = parse_spec(
        tiny_spec(tmp=tmp_path, steps=6, log_every=2, checkpoint_every=2, cpus_per_worker=1)
    )
    method = spec.methods[0]
    store = str(tmp_path / "tiny.zarr")
    ensure_data(spec, progress=False)
    uninterrupted = train_method(spec, method, store_url=store, tracking_uri="", run_id=None)
    folder = Path(storage_path(spec)) / run_name(spec, method)
    names = snapshot_names(folder)  # steps 4 and 6: the two kept
    final = Path(uninterrupted.checkpoint.path)
    expected, _ = load_denoiser(final)
    shutil.rmtree(final)
    assert final.name in names
    half = folder / "checkpoint_9999"  # a newer checkpoint's copy, cut short
    shutil.copytree(folder / next(n for n in names if n != final.name), half)
    (half / MANIFEST).unlink()

    client = MlflowClient(spec.mlflow.tracking_uri)
    run_id = client.create_run(client.create_experiment("resume")).info.run_id
    job = TrainingJob(spec, method, store, run_id)
    with pytest.warns(UserWarning, match="gone or incomplete"):
        trained = train_jobs([job], tracking_uri=spec.mlflow.tracking_uri)
    assert client.get_run(run_id).data.tags[TAG_RESUMED] == "4"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [6]
    assert any(p.name.startswith(SNAPSHOT + ".stale") for p in folder.iterdir())
    resumed, meta = load_denoiser(trained[job.name].checkpoint.path)
    assert meta["step"] == 6
    for (key, a), b in zip(
        resumed.state_dict().items(), expected.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), key


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (Ray's keep the driver's session, not its group)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ProcessLookupError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[3]) == sid:
                os.kill(int(stat.parent.name), signal.SIGKILL)


def test_a_killed_driver_leaves_no_running_run_and_no_second_model_version(tmp_path, ray_local):
    """``incdyn run`` killed (SIGKILL) after the model's registration, while its test metrics
    are being logged; the same spec again finishes and leaves nothing behind."""
    raw = tiny_spec(tmp=tmp_path, name="killed", steps=2, log_every=2, checkpoint_every=2,
                    cpus_per_worker=1, evaluation={"figure": False, "max_samples": 2})  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, KILL_ENV: "mlflow_logging", "RAY_ADDRESS": "local"}
    killed = subprocess.Popen(
        [sys.executable, "-m", "incdyn.platform.cli", "run", str(path)],
        cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert killed.wait(timeout=600) == -signal.SIGKILL
    finally:
        kill_session(killed.pid)  # the Ray processes it started
    spec = parse_spec(raw)
    client = MlflowClient(spec.mlflow.tracking_uri)
    experiment_id = client.get_experiment_by_name(spec.experiment_name).experiment_id
    assert len(client.search_runs([experiment_id], "attributes.status = 'RUNNING'")) == 2

    run_experiment(spec, progress=False)
    runs = client.search_runs([experiment_id], "")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed_runs = [r for r in runs if r.info.status == "KILLED"]
    parent = next(
        r for r in runs if r.info.status == "FINISHED" and r.data.tags[TAG_ROLE] == "experiment"
    )
    assert len(killed_runs) == 2
    assert {r.data.tags[TAG_REPLACED_BY] for r in killed_runs} == {parent.info.run_id}
    (version,) = client.search_model_versions("name = 'killed-ours'")
    assert version.tags[TAG_TRAINING] == run_name(spec, spec.methods[0])


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_rerun_marks_only_the_runs_whose_owner_is_gone(tmp_path):
    """Of two earlier attempts left RUNNING, the one whose process is gone (with its children)
    is marked KILLED and tagged with its replacement; a live one and another host's are not."""
    from incdyn.platform.ghosts import reap_ghosts
    from incdyn.platform.owner import TAG_HOST, TAG_PID, owner_tags

    spec = parse_spec(tiny_spec(tmp=tmp_path))
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.create_experiment("ghosts")
    dead = {**owner_tags(), TAG_PID: str(_dead_pid())}
    elsewhere = {**dead, TAG_HOST: "another-host"}
    ids = {}
    for label, owner in (("dead", dead), ("live", owner_tags()), ("elsewhere", elsewhere)):
        tags = {TAG_ROLE: "experiment", "incdyn.spec_name": spec.name,
                "incdyn.setting": spec.setting, **owner}  # fmt: skip
        parent = client.create_run(exp, tags=tags).info.run_id
        child = client.create_run(exp, tags={"mlflow.parentRunId": parent, **owner}).info.run_id
        ids[label] = (parent, child)
    marked = reap_ghosts(client, exp, spec_name=spec.name, setting=spec.setting,
                         role="experiment", replaced_by="new")  # fmt: skip
    assert sorted(marked) == sorted(ids["dead"])
    for run_id in ids["dead"]:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and run.data.tags[TAG_REPLACED_BY] == "new"
    for run_id in ids["live"] + ids["elsewhere"]:
        assert client.get_run(run_id).info.status == "RUNNING"


def test_a_killed_sweep_is_taken_over_and_its_killed_trials_left_out(tmp_path):
    """The rerun of a killed sweep adopts its parent run and Tune run; the trial that was
    running is marked KILLED, left out of the summary (it runs again); a finished one stays."""
    from incdyn.platform.owner import TAG_PID, owner_tags
    from incdyn.platform.sweep.driver import TAG_SWEEP_KEY, TAG_TUNE_RUN, adopt_killed_sweep
    from incdyn.platform.sweep.summary import collect_trials

    spec = parse_spec(tiny_spec(tmp=tmp_path))
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.create_experiment("sweeps")
    dead = {**owner_tags(), TAG_PID: str(_dead_pid())}
    tags = {TAG_ROLE: "sweep", TAG_SWEEP_KEY: "k1", TAG_TUNE_RUN: "tiny-sweep-abc", **dead}
    parent = client.create_run(exp, tags=tags).info.run_id
    trials = []
    for status in ("FINISHED", "RUNNING"):
        run = client.create_run(exp, tags={"mlflow.parentRunId": parent, TAG_ROLE: "trial", **dead})
        for key, value in (("context_ratio", 0.5), ("query_ratio", 0.5), ("backbone", "unet"),
                           ("seed", 0)):  # fmt: skip
            client.log_param(run.info.run_id, key, value)
        if status == "FINISHED":
            client.set_terminated(run.info.run_id, "FINISHED")
        trials.append(run.info.run_id)
    assert adopt_killed_sweep(client, exp, spec, "k2") == (None, None)  # another sweep's key
    assert adopt_killed_sweep(client, exp, spec, "k1") == (parent, "tiny-sweep-abc")
    assert client.get_run(parent).info.status == "RUNNING"  # now this process's
    assert client.get_run(trials[1]).info.status == "KILLED"
    assert [t.run_id for t in collect_trials(client, exp, parent)] == [trials[0]]
