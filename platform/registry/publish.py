"""Log a trained checkpoint as an MLflow pyfunc model and register it, one name per spec and method.

Registered model name: ``<MLflow experiment>-<method>`` (e.g. ``quickstart-ours``), characters
outside ``[A-Za-z0-9_.-]`` replaced by ``-``. Every trained model (each data setting and seed) is a
new version, tagged with its setting, seed and spec; ``models:/quickstart-ours/1`` loads it
(``mlflow.pyfunc.load_model``) or serves it (``incdyn serve models:/quickstart-ours/1``).

A version is also tagged with its training (``incdyn.training``, the Ray Train run name of the
weights): a rerun after a kill that finds the training's version registered already returns
it instead of registering the same weights again.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.utils import logging_utils

from incdyn.platform import console, kill_points
from incdyn.platform.checkpoint import SIDECAR_FILES, read_meta, write_manifest
from incdyn.platform.registry.pyfunc import CHECKPOINT_ARTIFACT
from incdyn.platform.tracking import TAG_METHOD, TAG_SEED, TAG_SETTING, TAG_SPEC

TAG_TRAINING = "incdyn.training"  # on a model version: the Ray Train run name of its weights

MODEL_FILES = ("model.pt", "meta.json")  # the optimizer state stays with the training run
# models-from-code: MLflow runs this file to build the model (not imported here: it calls set_model)
MODEL_CODE = Path(__file__).with_name("model_code.py")


def registered_name(experiment: str, method: str) -> str:
    """The registry name of ``method``'s models in MLflow experiment ``experiment``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{experiment}-{method}")


def logged_name(method: str) -> str:
    """``method`` as an MLflow logged-model name (which refuses ``/ : . % " '``: ``r0.7`` →
    ``r0-7``); the registered name and the version's tags keep the method's own name."""
    return re.sub(r"[/:.%\"']", "-", method)


def signature_of(meta: dict[str, Any]) -> ModelSignature:
    """Input: one field ``(T, C, H, W)`` float32 (NaN = missing); params: ``k``, ``seed`` and
    the interval ``level``."""
    grid = meta.get("grid") or (-1, -1)
    shape = (-1, len(meta["channels"]), int(grid[0]), int(grid[1]))
    k = int(meta["method"].get("ensemble", 10))
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), shape)]),
        params=ParamSchema(
            [
                ParamSpec("k", "long", k),
                ParamSpec("seed", "long", 0),
                ParamSpec("level", "double", 0.9),
            ]
        ),
    )


def publish_model(
    client: MlflowClient,
    run_id: str,
    checkpoint_dir: str | Path,
    *,
    experiment: str,
    method: str,
    tags: dict[str, str],
) -> tuple[str, str]:
    """Log ``checkpoint_dir`` as the pyfunc model of run ``run_id`` and register it.

    ``tags`` (setting, seed, spec) go on the model version, with the training's identity: a
    version of the same training registered already is returned as it is. Returns
    ``(name, version)``.
    """
    mlflow.set_tracking_uri(client.tracking_uri)  # Model.log and the registry read the global URI
    meta = read_meta(checkpoint_dir)
    registered = registered_name(experiment, method)
    if meta.get("train_run"):
        tags = {**tags, TAG_TRAINING: meta["train_run"]}
        existing = registered_version(client, registered, meta["train_run"])
        if existing is not None:
            return registered, existing
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id, name=logged_name(method), source_run_id=run_id, tags=tags
    )
    with tempfile.TemporaryDirectory(prefix="incdyn-model-") as tmp:
        staged = Path(tmp) / CHECKPOINT_ARTIFACT
        staged.mkdir()
        for name in MODEL_FILES:
            shutil.copy2(Path(checkpoint_dir) / name, staged / name)
        for name in SIDECAR_FILES:  # the calibration of the intervals, when fitted
            if (Path(checkpoint_dir) / name).is_file():
                shutil.copy2(Path(checkpoint_dir) / name, staged / name)
        write_manifest(staged)
        with warnings.catch_warnings():  # we give a signature: no input example is needed
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            info = Model.log(
                artifact_path=None,
                name=logged_name(method),
                flavor=mlflow.pyfunc,
                python_model=str(MODEL_CODE),  # the class is not pickled
                artifacts={CHECKPOINT_ARTIFACT: str(staged)},
                signature=signature_of(meta),
                pip_requirements=[f"torch=={torch.__version__}", f"mlflow=={mlflow.__version__}"],
                run_id=run_id,
                model_id=logged.model_id,
            )
    kill_points.reached("model_registration")
    with _mlflow_prints_off():
        version = mlflow.register_model(info.model_uri, registered, tags=tags)
    logging.getLogger("mlflow").info("registered %s version %s", registered, version.version)
    return registered, str(version.version)


def registered_version(client: MlflowClient, name: str, training: str) -> str | None:
    """The version of registered model ``name`` that holds the weights of ``training``, if any."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:  # no such registered model yet
        return None
    found = [v.version for v in versions if v.tags.get(TAG_TRAINING) == training]
    return str(min(found, key=int)) if found else None


@contextmanager
def _mlflow_prints_off():
    """MLflow prints 'Successfully registered model' and 'Created version' to the console
    itself; a quiet console (console.configure) keeps to incdyn's lines (the log file gets one)."""
    stream = logging_utils.MLFLOW_LOGGING_STREAM
    enabled = stream.enabled
    stream.enabled = enabled and not console.quiet()
    try:
        yield
    finally:
        stream.enabled = enabled


def model_tags(spec: Any, method: Any) -> dict[str, str]:
    """The tags of a model version: method, data setting, seed and spec name."""
    return {
        TAG_METHOD: method.name,
        TAG_SETTING: spec.setting,
        TAG_SEED: str(spec.seed),
        TAG_SPEC: spec.name,
    }
