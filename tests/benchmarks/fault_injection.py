"""Kill ``incdyn run`` by SIGKILL at every stage and at random moments; rerun; check what is left.

    .venv/bin/python tests/benchmarks/fault_injection.py                   # stages + 20 random kills
    .venv/bin/python tests/benchmarks/fault_injection.py --kills 3 --seed 0 --out faults.json

A small spec (two diffusion methods sharing a worker group, a classical baseline; a few steps of
a tiny backbone) is first run uninterrupted. Then, each in a fresh folder, it is killed once
and run again: at each named stage (``$INCDYN_KILL_AT``, platform/kill_points.py), at two states
a kill can leave on disk that no hook reaches (Ray Train's snapshot naming a checkpoint that
retention deleted; a final checkpoint's copy cut short), and at ``--kills`` random moments
(seeded). Per kill the table says the stage it hit, whether the rerun finished, the runs left
``RUNNING`` (ghosts), the registered versions of each model, and whether the rerun's test figures
equal the uninterrupted run's. The driver is started in a session of its own, so that the Ray
processes it started die with it (as on a machine that lost the driver's process tree).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

STEPS, EVERY = 6, 2
NAMED = [  # (label, $INCDYN_KILL_AT, damage done to the run folder after the kill)
    ("data", "data:2", None),
    ("train_step (1st training)", "train_step:3", None),
    ("checkpoint_save (2nd training)", "checkpoint_save:5", None),
    ("checkpoint_reported (2nd training)", "checkpoint_reported:5", None),
    # in the 1st training, so that the rerun fits the same group folder (and its snapshot) again
    ("checkpoint deleted, snapshot names it", "checkpoint_reported:2", "rotation"),
    ("final checkpoint copy cut short", "checkpoint_reported:2", "half_copy"),
    ("evaluation", "evaluation:1", None),
    ("verification", "verification:1", None),
    ("mlflow_logging", "mlflow_logging:2", None),
    ("model_registration", "model_registration:2", None),
]


def spec(folder: Path) -> dict:
    """Navier–Stokes 16×16×4, 16 training samples; ours and MissDiff, 6 steps each, a
    checkpoint every 2; NS inpainting; scores on 2 test samples."""
    return {
        "name": "faults",
        "data": {"params": {"grid": 16, "frames": 4}, "store": str(folder / "data.zarr"),
                 "chunk": 4, "n_train": 16, "n_val": 4, "n_test": 4, "observation": {"p": 0.3}},
        "methods": [
            {"name": "ours", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 2},
            {"name": "missdiff", "partition": {"context_ratio": 1.0, "query_ratio": 1.0},
             "ensemble": 1, "allow_zero_exposure": True},
            {"name": "ns_inpaint", "kind": "inpaint_ns"},
        ],
        "backbone": {"width": 8, "mults": [1, 2], "blocks_per_level": 1},
        "training": {"steps": STEPS, "batch_size": 2, "log_every": EVERY,
                     "checkpoint_every": EVERY, "val_samples": 2},
        "evaluation": {"max_samples": 2, "figure": False},
        "ray": {"num_workers": 1, "cpus_per_worker": 1, "storage_path": str(folder / "runs")},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"},
    }  # fmt: skip


def incdyn_run(folder: Path, *, kill_at: str | None = None, kill_after: float | None = None):
    """``incdyn run`` in ``folder``; returns (exit status, seconds, console text)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "INCDYN_KILL_AT")}
    env.update(TQDM_DISABLE="1", RAY_USAGE_STATS_ENABLED="0")
    if kill_at:
        env["INCDYN_KILL_AT"] = kill_at
    log = folder / f"console-{time.time_ns()}.txt"
    incdyn = Path(sys.executable).parent / "incdyn"
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(incdyn), "run", "spec.yaml"], cwd=folder, env=env, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
        try:
            if kill_after is not None:
                try:
                    proc.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
            rc = proc.wait(timeout=900)
        finally:
            kill_session(proc.pid)  # the Ray processes this driver started

    return rc, time.perf_counter() - t0, log.read_text()


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a driver started with ``start_new_session``
    and the Ray processes it started, which keep its session though not its process group)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # field 6: session
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def damage(folder: Path, how: str | None) -> None:
    """What a kill can leave that no hook reaches (see the module docstring)."""
    if how is None:
        return
    runs = folder / "runs"
    run_folders = sorted(runs.glob("faults-*"), key=lambda p: p.stat().st_mtime)
    latest = run_folders[-1]
    snapshot = json.loads((latest / "checkpoint_manager_snapshot.json").read_text())
    named = [r["checkpoint_dir_name"] for r in snapshot["checkpoint_results"]]
    if how == "rotation":  # retention deleted it; the snapshot was not rewritten
        shutil.rmtree(latest / sorted(named)[0])
    elif how == "half_copy":  # a copy of a final checkpoint that stopped part way
        source = latest / sorted(named)[-1]
        cut = latest / f"{source.name}-copy"
        shutil.copytree(source, cut)
        meta = json.loads((cut / "meta.json").read_text())
        (cut / "meta.json").write_text(json.dumps({**meta, "step": STEPS}))
        (cut / "model.pt").write_bytes((cut / "model.pt").read_bytes()[:64])


def state(folder: Path) -> dict:
    """Runs left RUNNING, model versions per registered name, and the test figures of the
    latest FINISHED experiment run's methods."""
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("faults")
    if exp is None:
        return {"running": 0, "versions": {}, "figures": {}}
    runs = client.search_runs([exp.experiment_id], "", max_results=1000)
    parents = [r for r in runs if r.data.tags.get("incdyn.role") == "experiment"
               and r.info.status == "FINISHED"]  # fmt: skip
    figures = {}
    if parents:
        parent = max(parents, key=lambda r: r.info.start_time).info.run_id
        for r in runs:
            if r.data.tags.get("mlflow.parentRunId") == parent:
                figures[r.data.tags["incdyn.method"]] = {
                    k: v for k, v in r.data.metrics.items() if k.startswith("test_")
                }
    versions = {}
    for model in client.search_registered_models():
        versions[model.name] = len(client.search_model_versions(f"name = '{model.name}'"))
    running = sum(r.info.status == "RUNNING" for r in runs)
    return {"running": running, "versions": versions, "figures": figures}


def stage_of_random_kill(folder: Path, text: str) -> str:
    """Where a kill at a random moment landed, read from what it left."""
    if "store " not in text:
        return "data"
    steps = []
    for meta in (folder / "runs").glob("faults-*/*/meta.json"):
        try:
            steps.append((json.loads(meta.read_text()).get("train_run"), meta.parent.name))
        except ValueError:
            continue
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("faults")
    runs = client.search_runs([exp.experiment_id], "") if exp else []
    logged = [r for r in runs if "test_mse" in r.data.metrics]
    registered = client.search_registered_models()
    if not runs:
        return "ray start / mlflow start"
    finals = [s for s in steps if s[1].endswith(f"step{STEPS:07d}")]
    if len(finals) < 2:
        return f"training ({len(steps)} checkpoints written)"
    if not logged and not registered:
        return "evaluation (1st method)"
    return f"evaluation/logging ({len(logged)} methods logged, {len(registered)} registered)"


def compare(figures: dict, baseline: dict) -> str:
    if set(figures) != set(baseline):
        return f"methods differ: {sorted(figures)}"
    worst = max(
        (abs(v - baseline[m][k]) / max(abs(baseline[m][k]), 1e-12), f"{m}.{k}")
        for m in figures
        for k, v in figures[m].items()
        if k in baseline[m]
    )
    return "equal" if worst[0] == 0 else f"differ ({worst[1]}: rel. {worst[0]:.2e})"


def ray_job_stopped_and_resubmitted(root: Path, baseline: dict) -> dict:
    """``ray job submit -- incdyn run`` on a Ray head of its own (loopback, its own temp dir and
    token, as tests/test_jobs.py starts one), ``ray job stop`` once its first training has
    logged a step, then the same job submitted again."""
    import secrets
    import socket

    from ray.job_submission import JobStatus, JobSubmissionClient

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    folder = root / "ray-job"
    folder.mkdir()
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec(folder), sort_keys=False))
    if (root / "baseline" / "data.zarr").is_dir():
        shutil.copytree(root / "baseline" / "data.zarr", folder / "data.zarr")
    venv_bin, temp = Path(sys.executable).parent, tempfile.mkdtemp(prefix="incdyn-ray-")
    token, dashboard = secrets.token_hex(32), free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, PATH=f"{venv_bin}:{env['PATH']}",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")  # fmt: skip
    head = subprocess.Popen(
        [sys.executable, "-c", "from ray.scripts.scripts import main; main()",  # `ray`
         "start", "--head", "--block", "--num-cpus=2",
         f"--port={free_port()}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
         f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                jobs = JobSubmissionClient(
                    f"http://127.0.0.1:{dashboard}", headers={"Authorization": f"Bearer {token}"}
                )
                jobs.list_jobs()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        submit = dict(
            entrypoint="incdyn run spec.yaml",
            runtime_env={"working_dir": str(folder), "env_vars": {"TQDM_DISABLE": "1"}},
            entrypoint_num_cpus=0.1,
        )

        def submitted() -> str:
            for _ in range(60):  # the head's agent may not take jobs yet
                try:
                    return jobs.submit_job(**submit)
                except RuntimeError:
                    time.sleep(5)
            return jobs.submit_job(**submit)

        first = submitted()
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:  # stopped once a training has logged a step
            exp = client.get_experiment_by_name("faults")
            runs = client.search_runs([exp.experiment_id], "") if exp else []
            if any("train_loss" in r.data.metrics for r in runs):
                break
            time.sleep(1)
        jobs.stop_job(first)
        terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
        while jobs.get_job_status(first) not in terminal:
            time.sleep(1)
        second = submitted()
        while (status := jobs.get_job_status(second)) not in terminal:
            time.sleep(2)
        logs = jobs.get_job_logs(second)
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_session(head.pid)
        shutil.rmtree(temp, ignore_errors=True)
    after = state(folder)
    found = [line for line in logs.splitlines() if line.startswith("training ")]
    return {
        "kill": "job",
        "stage": "ray job stop during training",
        "rerun_finished": status == JobStatus.SUCCEEDED,
        "ghosts": after["running"],
        "versions": max(after["versions"].values(), default=0),
        "figures": compare(after["figures"], baseline) if baseline and after["figures"] else "-",
        "rerun_found": "; ".join(line.split(": ", 1)[1] for line in found) or "-",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="random kills (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random moments")
    parser.add_argument("--no-stages", action="store_true", help="random kills only")
    parser.add_argument(
        "--skip-baseline", action="store_true", help="no uninterrupted run (figures not compared)"
    )
    parser.add_argument("--stage", help="only the named stages whose label holds this text")
    parser.add_argument("--out", type=Path, help="JSON file of every row")
    parser.add_argument("--jobs", type=int, default=1, help="kills run side by side (default 1)")
    parser.add_argument(
        "--ray-job", action="store_true", help="also a job stopped by `ray job stop`, resubmitted"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="incdyn-faults-"))
    rows = []
    try:
        base = root / "baseline"
        base.mkdir()
        (base / "spec.yaml").write_text(yaml.safe_dump(spec(base), sort_keys=False))
        baseline, seconds = {}, 0.0
        if not args.skip_baseline:
            rc, seconds, text = incdyn_run(base)
            if rc != 0:
                raise SystemExit(f"the uninterrupted run failed:\n{text[-3000:]}")
            baseline = state(base)["figures"]
            print(f"uninterrupted run: {seconds:.0f} s", flush=True)
        rng = random.Random(args.seed)
        named = [n for n in NAMED if args.stage is None or args.stage in n[0]]
        plans = [] if args.no_stages else [(label, at, how, None) for label, at, how in named]
        plans += [
            (None, None, None, round(rng.uniform(1.0, 0.75 * seconds), 1))
            for _ in range(args.kills)
        ]

        def one(i: int) -> dict:
            label, kill_at, how, after = plans[i]
            folder = root / f"kill{i:02d}"
            folder.mkdir()
            (folder / "spec.yaml").write_text(yaml.safe_dump(spec(folder), sort_keys=False))
            if kill_at != "data:2":  # the same data set: generated once, by the baseline
                shutil.copytree(base / "data.zarr", folder / "data.zarr")
            rc, _, text = incdyn_run(folder, kill_at=kill_at, kill_after=after)
            killed = rc == -signal.SIGKILL
            stage = label if label else f"t={after} s: {stage_of_random_kill(folder, text)}"
            if not killed:
                stage += f" (not killed: exit {rc})"
            damage(folder, how)
            rc2, seconds2, text2 = incdyn_run(folder)
            after_state = state(folder)
            found = [line for line in text2.splitlines() if line.startswith("training ")]
            row = {
                "kill": i + 1,
                "stage": stage,
                "rerun_finished": rc2 == 0,
                "ghosts": after_state["running"],
                "versions": max(after_state["versions"].values(), default=0),
                "figures": compare(after_state["figures"], baseline) if rc2 == 0 else "-",
                "rerun_found": "; ".join(line.split(": ", 1)[1] for line in found) or "-",
                "rerun_s": round(seconds2, 1),
            }
            if rc2 != 0:
                row["error"] = text2[-2000:]
            print(json.dumps(row), flush=True)
            return row

        with ThreadPoolExecutor(args.jobs) as pool:
            rows += list(pool.map(one, range(len(plans))))
        if args.ray_job:
            rows.append(ray_job_stopped_and_resubmitted(root, baseline))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if args.out:
            args.out.write_text(json.dumps(rows, indent=1))
        shutil.rmtree(root, ignore_errors=True)
    keys = ["kill", "stage", "rerun_finished", "ghosts", "versions", "figures", "rerun_found"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
