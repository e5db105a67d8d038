"""MLflow tracking: where the store is, and how specs become params.

Local default: ``sqlite:///<cwd>/mlflow.db`` (MLflow ≥ 3.7's own default, made absolute so that
Ray workers with another working directory reach the same file); ``$MLFLOW_TRACKING_URI`` or
the spec's ``mlflow.tracking_uri`` win when set. Clusters use an ``mlflow server``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from incdyn.platform.job_paths import resolve_local

MAX_PARAM_LENGTH = 500


def resolve_tracking_uri(configured: str | None = None) -> str:
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{resolve_local('mlflow.db')}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{resolve_local(uri[len('sqlite:///') :])}"
    if "://" not in uri:  # a bare path: a file store directory
        return Path(resolve_local(uri)).as_uri()
    return uri


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested spec → ``{"training.steps": "1000", "methods.ours.ensemble": "10", ...}``."""
    out: dict[str, str] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(tree, list) and tree and all(isinstance(v, dict) and "name" in v for v in tree):
        for value in tree:
            out.update(
                flatten(
                    {k: v for k, v in value.items() if k != "name"}, f"{prefix}{value['name']}."
                )
            )
    else:
        out[prefix[:-1]] = str(tree)[:MAX_PARAM_LENGTH]
    return out


def log_params(params: dict[str, str]) -> None:
    items = list(params.items())
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))


class RunLogger:
    """Logs metrics to one MLflow run from any process (e.g. a Ray Train worker)."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id

    def metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)
