"""`ray job submit -- incdyn run SPEC` against a real Ray head on loopback, runs found in MLflow.

The head is ``ray start --head --block`` in its own session with its own ``--temp-dir`` and
free ports, so it neither finds nor disturbs other Ray instances on the machine; teardown sends
SIGTERM to that one process (which stops everything it started), never ``ray stop``, which
would stop every Ray instance of the user. Token authentication stays on (Ray's default): the
head gets a fresh ``RAY_AUTH_TOKEN`` and the client sends it as a bearer header, so nothing is
read from or written to ``~/.ray``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.platform.report.tables import build_report
from incdyn.platform.tracking import ROLE_EXPERIMENT, ROLE_METHOD, TAG_METHOD, TAG_PARENT, TAG_ROLE

EXPERIMENT = "job-test"
HEAD_START_S = 120
JOB_S = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head():
    """A 2-CPU Ray head from this venv; yields (dashboard URL, auth headers)."""
    from ray.job_submission import JobSubmissionClient

    venv_bin = Path(sys.executable).parent
    temp = tempfile.mkdtemp(prefix="incdyn-ray-", dir="/tmp")  # short: Ray's socket paths
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # SIGTERM stops at once, no 30 s node drain
        PATH=f"{venv_bin}:{env['PATH']}",  # the job's `incdyn` and `python` are this venv's
    )
    dashboard = _free_port()
    cmd = [
        str(venv_bin / "ray"), "start", "--head", "--block", "--num-cpus=2",
        f"--port={_free_port()}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        f"--dashboard-agent-listen-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
        f"--temp-dir={temp}",
    ]  # fmt: skip
    log = Path(f"{temp}.log")
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url, headers = f"http://127.0.0.1:{dashboard}", {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + HEAD_START_S
        while True:
            try:
                JobSubmissionClient(url, headers=headers).list_jobs()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Ray head did not start:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(1)
        yield url, headers
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` drains, then stops what it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this fixture created, nothing else
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)
        log.unlink(missing_ok=True)


def test_submitted_incdyn_run_succeeds_and_lands_in_mlflow(head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    url, headers = head
    workdir = tmp_path / "job"
    workdir.mkdir()
    spec = tiny_spec(
        tmp=tmp_path,
        name="jobsmoke",
        store=tmp_path / "data" / "smoke.zarr",
        steps=4,
        log_every=2,
        checkpoint_every=2,
        # explicit: unset, one worker would ask for all 2 CPUs while the job's driver holds 0.1
        cpus_per_worker=1,
        experiment=EXPERIMENT,
        tracking_uri=None,  # from $MLFLOW_TRACKING_URI
        evaluation={"figure": False},
    )
    (workdir / "smoke.yaml").write_text(yaml.safe_dump(spec))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"  # absolute: the job runs in another folder
    client = MlflowClient(tracking)
    client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())

    jobs = JobSubmissionClient(url, headers=headers)
    job_id = jobs.submit_job(
        entrypoint="incdyn run smoke.yaml",
        runtime_env={
            "working_dir": str(workdir),  # incdyn itself is installed in the head's venv
            "env_vars": {"MLFLOW_TRACKING_URI": tracking, "TQDM_DISABLE": "1"},
        },
        entrypoint_num_cpus=0.1,
    )
    deadline = time.monotonic() + JOB_S
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    while (status := jobs.get_job_status(job_id)) not in terminal and time.monotonic() < deadline:
        time.sleep(2)
    logs = jobs.get_job_logs(job_id)
    if status not in terminal:
        jobs.stop_job(job_id)
    assert status == JobStatus.SUCCEEDED, f"job {job_id} {status}:\n{logs[-4000:]}"
    assert "| ours |" in logs  # the results table printed by `incdyn run`

    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_EXPERIMENT]
    (child,) = [r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_METHOD]
    assert parent.info.status == child.info.status == "FINISHED"
    assert child.data.tags[TAG_PARENT] == parent.info.run_id
    assert child.data.tags[TAG_METHOD] == "ours" and "test_mse" in child.data.metrics
    assert client.get_metric_history(child.info.run_id, "train_loss")  # logged by the Train worker

    report = build_report(EXPERIMENT, tracking_uri=tracking)  # the table, from MLflow alone
    (setting,) = report.columns
    assert report.cells["ours", setting].mean == child.data.metrics["test_mse"]


def test_job_with_relative_paths_is_refused_naming_each(head, tmp_path):
    """No $INCDYN_HOME, relative store and storage path, the default MLflow store: the job
    fails before any work, and its log names each path and what to use instead."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from tests.conftest import tiny_job_spec

    url, headers = head
    workdir = tmp_path / "job"
    workdir.mkdir()
    spec = tiny_job_spec(store="data/tiny.zarr", storage_path="runs")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(spec))
    jobs = JobSubmissionClient(url, headers=headers)
    job_id = jobs.submit_job(
        entrypoint="incdyn run tiny.yaml; echo exit=$?",
        runtime_env={"working_dir": str(workdir), "env_vars": {"MLFLOW_TRACKING_URI": ""}},
        entrypoint_num_cpus=0.1,
    )
    deadline = time.monotonic() + JOB_S
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    while jobs.get_job_status(job_id) not in terminal and time.monotonic() < deadline:
        time.sleep(1)
    logs = jobs.get_job_logs(job_id)
    assert "exit=2" in logs, logs[-3000:]
    for named in ("data.store 'data/tiny.zarr'", "ray.storage_path 'runs'",
                  "mlflow.tracking_uri sqlite:///./mlflow.db", "gs://", "MLflow server",
                  "INCDYN_HOME"):  # fmt: skip
        assert named in logs, logs[-3000:]
    assert "Traceback" not in logs  # refused by the CLI, not crashed
