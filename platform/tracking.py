"""MLflow tracking: where the store is, how specs become params, and the record of every run.

Local default: ``sqlite:///<cwd>/mlflow.db`` (MLflow ≥ 3.7's own default, made absolute so that
Ray workers with another working directory reach the same file); ``$MLFLOW_TRACKING_URI`` or
the spec's ``mlflow.tracking_uri`` win when set. Clusters use an ``mlflow server``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform as _platform  # the standard library's (a top-level `platform` folder must never shadow it)
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mlflow.entities import Metric, Param, Run
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from incdyn.platform import kill_points
from incdyn.platform.job_paths import resolve_local
from incdyn.platform.owner import owner_tags

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


# -- the run record: tags, parent and child runs, evaluation logging ------------------------
# Every incdyn run carries these tags; reports, sweep summaries and the UI read them.
TAG_ROLE = "incdyn.role"  # one of the ROLE_* values
TAG_SPEC = "incdyn.spec_name"
TAG_SETTING = "incdyn.setting"  # the data setting, e.g. "navier_stokes pixel 20%"
TAG_METHOD = "incdyn.method"
TAG_KIND = "incdyn.kind"  # diffusion or the baseline's kind
TAG_SEED = "incdyn.seed"
TAG_VARIANT = "incdyn.variant"  # a sweep trial's configuration label
TAG_TUNE_TRIAL = "incdyn.tune_trial"
TAG_SWEEP_MODE = "incdyn.sweep_mode"
TAG_BEST = "incdyn.best"  # on a sweep's parent: the best configuration's label
TAG_STOPPED = "incdyn.stopped"
TAG_ERROR = "incdyn.error"
TAG_TRAIN_RUN = "ray_train_run"  # the Ray Train run a diffusion method trained in
TAG_RESUMED = "resumed_from_step"
TAG_PARENT = "mlflow.parentRunId"
TAG_VERSIONS = "incdyn.versions"  # on a parent: Python and the packages the runs ran with
TAG_MACHINE = "incdyn.machine"  # on a parent: architecture and CPU cores of the driver's machine

ROLE_EXPERIMENT = "experiment"
ROLE_SWEEP = "sweep"
ROLE_METHOD = "method"
ROLE_TRIAL = "trial"
PARENT_ROLES = (ROLE_EXPERIMENT, ROLE_SWEEP)
CHILD_ROLES = (ROLE_METHOD, ROLE_TRIAL)

# Spec sections that are not run-wide params: a child run logs its own method and seed.
NOT_PARAMS = ("methods", "seeds", "seed", "profiles", "settings")
FIGURE_PATH = "figures/test_sample0.png"
EXAMPLE_PATH = "examples/test_sample0.npz"  # a method's truth, mask and imputation of test sample 0
COMPARISON_FIGURE = "figures/comparison.png"  # on a parent: test sample 0 by every method
METRICS_FIGURE = "figures/test_metrics.png"  # on a parent: each test metric per method, ± seeds

# The MLflow UI (read by platform/ui): the experiment's kind and its saved view of method runs.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"
TAG_SAVED_VIEW_PREFIX = "mlflow.sharedViewState."  # + view id: a view in the runs page's list


VERSIONED = (
    "incdyn",
    "torch",
    "ray",
    "mlflow",
    "numpy",
    "xarray",
    "zarr",
    "opencv-python-headless",
)


def environment_tags() -> dict[str, str]:
    """Where the runs ran: ``incdyn.versions`` and ``incdyn.machine`` (a parent's tags, so that
    a report read later, elsewhere, names the environment of the runs, not its own)."""
    found = []
    for name in VERSIONED:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    versions = f"Python {_platform.python_version()}; " + ", ".join(found)
    return {
        TAG_VERSIONS: versions,
        TAG_MACHINE: f"{_platform.machine()}, {os.cpu_count()} CPU cores",
    }


def spec_params(spec: Any) -> dict[str, str]:
    """The run-wide params of a resolved spec (``training.steps``, ``data.observation.p``, ...)."""
    return flatten({k: v for k, v in spec.to_dict().items() if k not in NOT_PARAMS})


def log_params_to(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def start_parent(
    client: MlflowClient,
    experiment_id: str,
    spec: Any,
    *,
    role: str,
    run_name: str,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> str:
    """Open the parent run of an experiment or a sweep over one data setting; returns its id.

    It holds the run-wide params, the seeds, the resolved spec (``spec.yaml``) and the
    environment (:func:`environment_tags`).
    """
    if role not in PARENT_ROLES:
        raise ValueError(f"parent role {role!r} is not one of {PARENT_ROLES}")
    run = client.create_run(
        experiment_id,
        run_name=run_name,
        tags=resolve_tags(
            {
                TAG_ROLE: role,
                TAG_SPEC: spec.name,
                TAG_SETTING: spec.setting,
                **environment_tags(),
                **owner_tags(),
                **(tags or {}),
            }
        ),
    )
    run_id = run.info.run_id
    log_params_to(
        client, run_id, {**spec_params(spec), "seeds": str(spec.run_seeds), **(params or {})}
    )
    client.log_text(run_id, yaml.safe_dump(spec.to_dict(), sort_keys=False), "spec.yaml")
    return run_id


def start_child(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    spec: Any,
    method: Any,
    *,
    role: str,
    run_name: str,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> str:
    """Open a method's (or a sweep trial's) child run; returns its id.

    Tags: role, method, kind, setting, seed and the parent; params: the run-wide params, the seed
    and the method's own fields (``method.partition.context_ratio``, ...).
    """
    if role not in CHILD_ROLES:
        raise ValueError(f"child role {role!r} is not one of {CHILD_ROLES}")
    run = client.create_run(
        experiment_id,
        run_name=run_name,
        tags=resolve_tags(
            {
                TAG_ROLE: role,
                TAG_METHOD: method.name,
                TAG_KIND: method.kind,
                TAG_SETTING: spec.setting,
                TAG_SEED: str(spec.seed),
                TAG_PARENT: parent_id,
                **owner_tags(),
                **(tags or {}),
            }
        ),
    )
    method_params = {f"method.{k}": v for k, v in flatten(method.model_dump(mode="json")).items()}
    log_params_to(
        client,
        run.info.run_id,
        {**spec_params(spec), "seed": str(spec.seed), **method_params, **(params or {})},
    )
    return run.info.run_id


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    """``metrics`` at step 0, in one batch (a run's final figures, e.g. its wall-time phases)."""
    stamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()])


def log_evaluation(
    client: MlflowClient,
    run_id: str,
    metrics: dict[str, float],
    *,
    figure: Any = None,
    example: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> None:
    """Final metrics of a method's run (step 0), its truth/observed/imputed/error figure and
    ``example``: test sample 0 as ``(truth, mask, imputed)`` for the parent's comparison."""
    stamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()])
    kill_points.reached("mlflow_logging")
    if figure is not None:
        client.log_figure(run_id, figure, FIGURE_PATH)
    if example is not None:
        truth, mask, imputed = example
        with tempfile.TemporaryDirectory() as tmp:
            folder, name = EXAMPLE_PATH.rsplit("/", 1)
            np.savez_compressed(Path(tmp) / name, truth=truth, mask=mask, imputed=imputed)
            client.log_artifact(run_id, str(Path(tmp) / name), folder)


def search_all(
    client: MlflowClient,
    experiment_id: str,
    filter_string: str = "",
    order_by: list[str] | None = None,
) -> list[Run]:
    """Every run of the experiment matching ``filter_string`` (all result pages)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, order_by=order_by, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def read_example(client: MlflowClient, run_id: str) -> dict[str, np.ndarray] | None:
    """``{"truth", "mask", "imputed"}`` of a method run's test sample 0; None if not logged."""
    folder = EXAMPLE_PATH.rsplit("/", 1)[0]
    if not any(a.path == EXAMPLE_PATH for a in client.list_artifacts(run_id, folder)):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, EXAMPLE_PATH, tmp)
        with np.load(local, allow_pickle=False) as data:
            return {k: data[k] for k in ("truth", "mask", "imputed")}


@contextmanager
def run_scope(client: MlflowClient, run_id: str) -> Iterator[str]:
    """Mark ``run_id`` FINISHED when the block ends, FAILED when it raises."""
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
