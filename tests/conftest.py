"""Shared fixtures: small synthetic stores and a real local Ray instance."""

from __future__ import annotations

import os
import warnings

import pytest

warnings.filterwarnings("ignore", module="zarr")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance with 2 CPUs for the whole session."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def comparison_spec(tmp, *, steps: int = 4) -> dict:
    """A tiny spec of the quick start's three methods (ours, MissDiff, NS inpainting) in ``tmp``."""
    return {
        "name": "tiny-compare",
        "data": {
            "preset": "quickstart",
            "params": {"grid": 16, "frames": 4},
            "store": str(tmp / "tiny.zarr"),
            "n_train": 16,
            "n_val": 4,
            "n_test": 4,
            "chunk": 4,
            "observation": {"p": 0.3},
        },
        "methods": [
            {
                "name": "ours",
                "partition": {"context_ratio": 0.7, "query_ratio": 0.7},
                "ensemble": 3,
            },
            {
                "name": "missdiff",
                "partition": {"context_ratio": 1.0, "query_ratio": 1.0},
                "ensemble": 1,
                "allow_zero_exposure": True,
            },
            {"name": "ns_inpaint", "kind": "inpaint_ns"},
        ],
        "backbone": {"width": 8, "mults": [1, 2], "blocks_per_level": 1},
        "training": {
            "steps": steps,
            "batch_size": 2,
            "log_every": steps,
            "checkpoint_every": steps,
            "val_samples": 4,
        },
        "ray": {"num_workers": 1, "storage_path": str(tmp / "runs")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": "tiny-compare"},
    }


@pytest.fixture(scope="session")
def comparison_run(tmp_path_factory, ray_local):
    """``incdyn run`` of :func:`comparison_spec`, once per session: (spec file, spec, rows).

    The spec is also written as YAML, for commands that take a spec path (``incdyn ui``)."""
    import yaml
    from mlflow.tracking import MlflowClient

    from incdyn.platform.experiment.run import run_experiment
    from incdyn.platform.spec import parse_spec

    tmp = tmp_path_factory.mktemp("compare")
    raw = comparison_spec(tmp)
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = parse_spec(raw)
    # artifacts under tmp, not ./mlruns (a SQLite store's default artifact root is the cwd)
    client = MlflowClient(spec.mlflow.tracking_uri)
    client.create_experiment(spec.experiment_name, artifact_location=(tmp / "mlruns").as_uri())
    rows = run_experiment(spec, progress=False)
    return path, spec, rows
