"""Several trainings in one Ray Train worker group, one after the other (Alg. 1 for each).

``train_group_per_worker(config)`` is handed to ``TorchTrainer`` by :mod:`group`; ``config["jobs"]``
holds one :func:`worker.train_loop_per_worker` config per training (its spec, method, store,
MLflow run and ``train_run`` name, and ``resume_from``: the path of its latest checkpoint found
before the fit, or None). The worker processes, their imports and the process group are set up
once; each training then builds its own data loaders, model and optimiser from its own config,
so its weights are the same as in a worker group of its own.

Every report names its training (:class:`worker.Slot`), so the group's checkpoints are told
apart. After a worker-group restart Ray Train hands back the group's latest checkpoint: the
trainings before its own are finished (they run in order), its own resumes from it, the later
ones start from their ``resume_from`` (the newer of the two for its own: a kill can leave a
checkpoint on disk that Ray Train never registered).
"""

from __future__ import annotations

from typing import Any

import ray.train

from incdyn.platform.checkpoint import read_meta
from incdyn.platform.train.worker import Slot, found_checkpoint, newest, train


def _restored_run(checkpoint: ray.train.Checkpoint | None) -> str | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return read_meta(d).get("train_run")


def train_group_per_worker(config: dict[str, Any]) -> None:
    jobs = config["jobs"]
    names = [job["train_run"] for job in jobs]
    restored = ray.train.get_checkpoint()
    restored_run = _restored_run(restored)
    start = names.index(restored_run) if restored_run in names else 0
    for index in range(start, len(jobs)):
        job = jobs[index]
        own = index == start and restored_run == names[index]
        checkpoint = newest(restored, found_checkpoint(job)) if own else found_checkpoint(job)
        train(job, newest(checkpoint), Slot(names[index], index))
