"""Ray's loggers quiet by default, untouched with ``--verbose``. The console of a whole
``incdyn run`` (bars, table, none of Ray's lines) is checked on the job that
tests/test_readme_cluster.py submits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from incdyn.platform import console
from tests.conftest import tiny_job_spec
from tests.test_readme_cluster import RAY_NOISE


def test_verbose_leaves_ray_loggers_alone():
    import logging

    logger = logging.getLogger("ray.train")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)
        console.configure(verbose=True)
        assert logger.level == logging.INFO
        console.configure(verbose=False)
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(before)


@pytest.mark.slow  # a local Ray and a Ray Train run of its own; the job test covers the default
def test_incdyn_run_prints_bars_and_table_not_ray_logs(tmp_path):
    spec = tiny_job_spec(store=str(tmp_path / "tiny.zarr"), storage_path=str(tmp_path / "runs"))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "RAY_ADDRESS")}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", RAY_USAGE_STATS_ENABLED="0"
    )
    incdyn = Path(sys.executable).parent / "incdyn"
    out = subprocess.run(
        [str(incdyn), "run", "tiny.yaml"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    for noise in RAY_NOISE:
        assert noise not in text, f"{noise!r} in the console:\n{text[-4000:]}"
    assert "train ours (seed 0)" in text and "4/4" in text  # the training bar, to the last step
    assert "loss=" in text and "val=" in text and "steps/s=" in text
    assert "impute test" in text  # the evaluation bar
    assert "| ours |" in out.stdout and f"MLflow: sqlite:///{tmp_path / 'mlflow.db'}" in out.stdout


def test_trial_bar_counts_trials_and_keeps_the_best():
    from types import SimpleNamespace

    bar = console.trial_bar_callback(3)
    for value in (0.5, 0.2):
        trial = SimpleNamespace(last_result={"val_mse": value})
        bar.on_trial_complete(iteration=1, trials=[], trial=trial)
    bar.on_trial_error(iteration=2, trials=[], trial=SimpleNamespace(last_result=None))
    assert bar.done == 3 and bar.best == 0.2 and bar.failed == 1
    bar.on_experiment_end(trials=[])


def test_the_quiet_console_sends_ray_mlflow_and_library_warnings_to_the_log_file(
    tmp_path, monkeypatch, capsys
):
    """Ray's token-authentication notice, a Ray Data warning, MLflow's store-creation
    INFO and a library's warning reach the log file, not the console; incdyn's own warning is one
    console line."""
    import logging
    import warnings

    import ray.data  # noqa: F401  (Ray's and Ray Data's console handlers exist from import on)

    monkeypatch.setenv(console.LOG_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(console, "_log", None)
    with warnings.catch_warnings():
        console.configure(verbose=False)
        ray_auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
        ray_auth.warning("Token authentication is enabled for this Ray cluster.")
        executor = logging.getLogger("ray.data._internal.execution.streaming_executor")
        executor.warning("Starting execution of Dataset dataset_1_0.")
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables")
        warnings.warn_explicit("Ambiguous reference date", UserWarning, "xarray/times.py", 1)
        warnings.warn_explicit("time read as hours", UserWarning, console.__file__, 1)
    err = capsys.readouterr().err
    assert err == "incdyn: warning: time read as hours\n", err
    log = console.log_file()
    assert log is not None and log.parent == tmp_path
    text = log.read_text()
    for line in ("Token authentication", "Starting execution of Dataset", "Creating initial MLflow",
                 "Ambiguous reference date"):  # fmt: skip
        assert line in text, text


def test_registering_a_model_prints_nothing_on_a_quiet_console(tmp_path, monkeypatch, capfd):
    """MLflow's own 'Successfully registered model' / 'Created version' lines (its eprint)."""
    from mlflow.utils import logging_utils

    from incdyn.platform.registry.publish import _mlflow_prints_off

    monkeypatch.setattr(console, "_log", None)
    with _mlflow_prints_off():
        logging_utils.eprint("Created version '1' of model 'loud'.")
    monkeypatch.setenv(console.LOG_DIR_ENV, str(tmp_path))
    console.configure(verbose=False)
    with _mlflow_prints_off():
        logging_utils.eprint("Created version '2' of model 'quiet'.")
    err = capfd.readouterr().err
    assert "'loud'" in err and "'quiet'" not in err
    assert logging_utils.MLFLOW_LOGGING_STREAM.enabled  # as it was


def test_a_resumed_training_bar_counts_the_steps_left_and_ends_full(tmp_path, monkeypatch):
    """Two trainings of 8 steps on a rerun: one resumed from step 4 (its run logs 6 and 8),
    one from step 0 killed again before its first log: 12 steps left, counted 4 then shown full."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    class Bar:
        def __init__(self, total, **kwargs):
            self.total, self.n, self.closed_at = total, 0, None

        def update(self, k):
            self.n += k

        def set_postfix(self, *args, **kwargs):
            pass

        def close(self):
            self.closed_at = self.n

    bars = []
    monkeypatch.setattr(console, "tqdm", lambda **kw: bars.append(Bar(**kw)) or bars[-1])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bar")
    resumed, fresh = (client.create_run(exp).info.run_id for _ in range(2))
    client.log_batch(resumed, metrics=[Metric("train_loss", 1.0, 0, s) for s in (6, 8)])
    with console.training_bar(uri, [resumed, fresh], 12, "train", {resumed: 4, fresh: 0}):
        pass
    assert bars[0].total == 12 and bars[0].closed_at == 12
    with pytest.raises(RuntimeError), console.training_bar(uri, [resumed], 4, "t", {resumed: 4}):
        raise RuntimeError("killed")
    assert bars[1].closed_at == 4  # steps 6, 8 of the resumed run: 4 past its step 4
    assert console.resume_line("t", 4, 8) == "t: resumed from step 4 of 8"
