"""Data preparation for a spec: its store's absolute URL, the data checked before Ray starts,
and the store generated as Ray tasks or reused when it is already finished."""

from __future__ import annotations

from functools import partial

from incdyn.datasets.build import build_store, plan_store, store_config
from incdyn.platform import kill_points
from incdyn.platform.job_paths import resolve_local
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec


def store_url_of(spec: ExperimentSpec) -> str:
    return resolve_local(spec.store_url)


def _store_config(spec: ExperimentSpec) -> dict:
    d = spec.data
    return store_config(
        source=d.source,
        preset=d.preset,
        params=dict(d.params),
        sizes={"train": d.n_train, "val": d.n_val, "test": d.n_test},
        chunk=d.chunk,
        family=d.observation,
        seed=spec.seed,
        test_family=d.test_observation,
        holdout=spec.evaluation.holdout,
        train_truth=any(
            isinstance(m, DiffusionMethod) and m.training_data == "complete" for m in spec.methods
        ),
    )


def check_data(spec: ExperimentSpec) -> None:
    """Fail on a missing file, variable or dimension, or a split larger than the data, here and
    before Ray starts (a store that is already complete is not read again)."""
    plan_store(store_url_of(spec), _store_config(spec))


def ensure_data(spec: ExperimentSpec, *, progress: bool = True) -> str:
    """Generate (Ray tasks) or reuse the spec's store; returns its absolute URL."""
    url = store_url_of(spec)
    status = build_store(
        url, _store_config(spec), progress=progress, on_shard=partial(kill_points.reached, "data")
    )
    if progress and status == "reused":
        print(f"store {url}: reusing the finished data set")
    return url
