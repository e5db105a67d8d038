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


def tiny_job_spec(
    *, store: str, storage_path: str | None = None, steps: int = 4, methods: list | None = None
) -> dict:
    """A spec that trains ``ours`` (or runs ``methods``) for a few steps on a 16×16 store: a
    whole `incdyn run` of it fits a test, on a local Ray or as a Ray job. Paths as given
    (relative ones on purpose)."""
    spec = {
        "name": "jobsmoke",
        "data": {
            "params": {"grid": 16, "frames": 4},
            "store": store,
            "n_train": 16,
            "n_val": 4,
            "n_test": 4,
            "chunk": 4,
            "observation": {"p": 0.3},
        },
        "methods": methods or [{"name": "ours", "ensemble": 2}],
        "backbone": {"width": 8, "mults": [1, 2], "blocks_per_level": 1},
        "training": {
            "steps": steps,
            "batch_size": 2,
            "log_every": 2,
            "checkpoint_every": 2,
            "val_samples": 4,
        },
        "evaluation": {"figure": False},
        # explicit: unset, one worker would ask for all 2 CPUs while a job's driver holds 0.1
        "ray": {"num_workers": 1, "cpus_per_worker": 1},
    }
    if storage_path is not None:
        spec["ray"]["storage_path"] = storage_path
    return spec
