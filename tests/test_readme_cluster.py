"""The documented cluster commands, run as written: ``infra/cluster-local.sh`` on loopback; and
the console of the ``incdyn run`` it submits (progress bars and the table, not Ray's logs).

``docs/sweeps-and-cluster.md`` shows the script's lines (checked here, so the two cannot drift apart); the test
runs the script itself from a folder holding only a tiny spec with relative paths, on free
ports, in its own Ray temp folder (``RAY_TMPDIR``), so it neither finds nor disturbs other Ray
instances. The script starts the head with ``--block`` and stops it with a signal on exit.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_job_spec

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "infra" / "cluster-local.sh"
SCRIPT_S = 600
RAY_NOISE = (
    "Reporting training result",
    "Checkpoint successfully created",
    "PreemptionWatcher",
    "TrainingReport(",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _script_block() -> str:
    text = SCRIPT.read_text()
    m = re.search(r"# --- cluster-local: begin ---\n(.*?)# --- cluster-local: end ---", text, re.S)
    assert m, "infra/cluster-local.sh lost its begin/end markers"
    return m.group(1)


def _run_script(work: Path, env: dict) -> tuple[int, str, str]:
    """``bash infra/cluster-local.sh tiny.yaml`` in ``work``; its head stopped whatever happens."""
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "tiny.yaml"], cwd=work, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=SCRIPT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the script's trap stops its head
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this test created, nothing else
            stdout, stderr = proc.communicate()
    return proc.returncode, stdout, stderr


def test_the_docs_show_the_script_lines():
    doc = (ROOT / "docs" / "sweeps-and-cluster.md").read_text()
    m = re.search(r"<!-- infra/cluster-local.sh -->\n```bash\n(.*?)```", doc, re.S)
    assert m, "the cluster block (after '<!-- infra/cluster-local.sh -->') is missing"
    assert m.group(1) == _script_block()
    for needed in ("RAY_AUTH_MODE=token", "RAY_AUTH_TOKEN", "ray start --head", "ray job submit",
                   "ray job logs"):  # fmt: skip
        assert needed in m.group(1)


def test_readme_cluster_commands_run_a_job_that_writes_to_incdyn_home(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    # a relative store, storage path and MLflow store, resolved against $INCDYN_HOME in the job
    spec = tiny_job_spec(store="data/tiny.zarr", storage_path="runs")
    (work / "tiny.yaml").write_text(yaml.safe_dump(spec))
    venv_bin = Path(sys.executable).parent
    ray_tmp = tempfile.mkdtemp(prefix="incdyn-rt-", dir="/tmp")  # short: Ray's socket paths
    # as a user's shell: no Ray, MLflow or tqdm settings of the test session
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "TQDM_"))}
    env.update(
        PATH=f"{venv_bin}:{env['PATH']}",
        INCDYN_HOME=str(home),
        RAY_PORT=str(_free_port()),
        DASHBOARD_PORT=str(_free_port()),
        AGENT_PORT=str(_free_port()),
        CLIENT_PORT=str(_free_port()),
        RAY_TMPDIR=ray_tmp,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # the exit trap's SIGTERM stops at once
    )
    for _ in range(2):  # a second try only when the head itself died while starting
        returncode, stdout, stderr = _run_script(work, env)
        head_log = home / "ray-head.log"
        died = head_log.exists() and "Remaining processes will be killed" in head_log.read_text()
        if returncode == 0 or not died or (home / "mlflow.db").exists():
            break
        shutil.rmtree(ray_tmp, ignore_errors=True)
        ray_tmp = env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="incdyn-rt-", dir="/tmp")
    shutil.rmtree(ray_tmp, ignore_errors=True)
    text = stdout + stderr
    submit = home / "submit.log"
    detail = (
        f"{text[-4000:]}\n--- submit.log:\n{submit.read_text()[-2000:] if submit.exists() else ''}"
    )
    assert returncode == 0, detail
    assert "succeeded" in text and "| ours |" in stdout, detail
    # the job's console is `incdyn run`'s: progress bars and the table, none of Ray's log lines
    for noise in RAY_NOISE:
        assert noise not in text, f"{noise!r} in the console:\n{text[-4000:]}"
    assert "train ours (seed 0)" in text and "4/4" in text  # the training bar, to the last step
    assert "loss=" in text and "val=" in text and "steps/s=" in text
    assert "impute test" in text  # the evaluation bar
    assert f"MLflow: sqlite:///{home / 'mlflow.db'}" in stdout
    # everything the job wrote is in $INCDYN_HOME, nothing in the job's own folder
    assert (home / "data" / "tiny.zarr").is_dir() and any((home / "runs").iterdir())
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("jobsmoke").experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 2
    assert sorted(p.name for p in work.iterdir()) == ["tiny.yaml"]
