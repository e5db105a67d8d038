"""Relative paths inside a Ray job: refused by name, or resolved against $INCDYN_HOME."""

from __future__ import annotations

import pytest

from incdyn.platform.job_paths import check_job_paths, resolve_local
from incdyn.platform.spec import SpecError, parse_spec
from incdyn.platform.tracking import resolve_tracking_uri
from tests.conftest import tiny_job_spec


def _spec(**kw):
    return parse_spec(tiny_job_spec(**kw), "test")


@pytest.fixture
def in_job(monkeypatch, tmp_path):
    monkeypatch.delenv("INCDYN_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    monkeypatch.chdir(tmp_path)


def test_outside_a_job_relative_paths_are_fine(monkeypatch):
    for name in ("RAY_JOB_CONFIG_JSON_ENV_VAR", "RAY_JOB_ID", "INCDYN_HOME"):
        monkeypatch.delenv(name, raising=False)
    check_job_paths(_spec(store="data/x.zarr", storage_path="runs"))


def test_in_a_job_each_relative_path_is_named(in_job):
    with pytest.raises(SpecError) as info:
        check_job_paths(_spec(store="data/x.zarr", storage_path="runs"))
    text = str(info.value)
    assert "data.store 'data/x.zarr'" in text and "ray.storage_path 'runs'" in text
    assert "mlflow.tracking_uri sqlite:///./mlflow.db (the default" in text
    assert "gs://" in text and "MLflow server" in text and "INCDYN_HOME" in text


def test_in_a_job_absolute_paths_and_a_server_pass(in_job, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    check_job_paths(_spec(store=str(tmp_path / "x.zarr"), storage_path="gs://bucket/runs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # relative sqlite
    with pytest.raises(SpecError, match=r"mlflow.tracking_uri sqlite:///mlflow.db"):
        check_job_paths(_spec(store=str(tmp_path / "x.zarr"), storage_path=str(tmp_path)))


def test_incdyn_home_resolves_relative_paths(in_job, monkeypatch, tmp_path):
    home = tmp_path / "home"
    monkeypatch.setenv("INCDYN_HOME", str(home))
    check_job_paths(_spec(store="data/x.zarr", storage_path="runs"))
    assert resolve_local("data/x.zarr") == str(home / "data" / "x.zarr")
    assert resolve_local("gs://b/x.zarr") == "gs://b/x.zarr"
    assert resolve_tracking_uri(None) == f"sqlite:///{home / 'mlflow.db'}"
    monkeypatch.setenv("INCDYN_HOME", "relative/home")
    with pytest.raises(SpecError, match="must be an absolute path"):
        check_job_paths(_spec(store="data/x.zarr"))
