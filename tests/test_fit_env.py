"""Ray settings that cut the fixed cost of every ``TorchTrainer.fit()`` reach Ray's processes:
the worker processes of the job know their own cluster's address (``pin_address``), and the
controller's poll interval set by the driver reaches the training workers."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.usefixtures("ray_local")


def test_worker_processes_know_their_cluster(ray_local):
    @ray_local.remote(num_cpus=0)
    def address() -> str | None:
        return os.environ.get("RAY_ADDRESS")

    assert ray_local.get(address.remote()) == ray_local.get_runtime_context().gcs_address


def test_fit_env_reaches_train_workers(ray_local, tmp_path, monkeypatch):
    import ray.train
    from ray.train.torch import TorchTrainer

    from incdyn.platform.train import driver

    monkeypatch.delenv(driver.HEALTH_CHECK_ENV, raising=False)
    driver.apply_fit_env()
    out = tmp_path / "env.json"

    def loop(config):
        names = (config["knob"], "RAY_ADDRESS")
        with open(config["out"], "w") as f:
            json.dump({n: os.environ.get(n) for n in names}, f)

    result = TorchTrainer(
        loop,
        train_loop_config={"out": str(out), "knob": driver.HEALTH_CHECK_ENV},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(name="fit-env", storage_path=str(tmp_path / "runs")),
    ).fit()
    assert result.error is None
    seen = json.loads(out.read_text())
    assert seen[driver.HEALTH_CHECK_ENV] == driver.HEALTH_CHECK_INTERVAL_S
    assert seen["RAY_ADDRESS"] == ray_local.get_runtime_context().gcs_address


def test_fit_env_keeps_a_users_setting(monkeypatch):
    from incdyn.platform.train import driver

    monkeypatch.setenv(driver.HEALTH_CHECK_ENV, "3.5")
    driver.apply_fit_env()
    assert os.environ[driver.HEALTH_CHECK_ENV] == "3.5"
