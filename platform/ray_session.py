"""Connect to Ray: the cluster in ``$RAY_ADDRESS`` (``ray job submit`` sets it) or a new local one.

``address="local"`` avoids attaching to a stale ``/tmp/ray/ray_current_cluster`` left by a killed
head (a plain ``ray.init()`` keeps trying to reach it).

Every worker process of the job gets ``RAY_ADDRESS`` set to its own cluster
(:func:`pin_address`, Ray's ``worker_process_setup_hook``). Without it, Ray's State API inside
a worker finds the cluster by looking for running GCS processes, and on a machine with more
than one Ray instance it picks the one named in ``/tmp/ray/ray_current_cluster``, which may be
another one: Ray Train's placement-group cleaner then waits out its 12 s stop timeout at the
end of every ``TorchTrainer.fit()``.
"""

from __future__ import annotations

import logging
import math
import os

import ray

from incdyn.platform import console


def init_ray(address: str | None = None, *, verbose: bool = True) -> None:
    """``verbose=False``: workers' and actors' output stays in Ray's log files (console.py)."""
    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    console.route_libraries()  # Ray's console handler exists now: its notices to the log file
    ray.init(
        address=target,
        logging_level=logging.WARNING,
        log_to_driver=verbose,
        runtime_env=PINNED_RUNTIME_ENV,
    )


def pin_address() -> None:
    """Set ``RAY_ADDRESS`` in this worker process to the cluster it belongs to."""
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address


PINNED_RUNTIME_ENV = {"worker_process_setup_hook": f"{__name__}.{pin_address.__name__}"}


def cpus_per_worker(num_workers: int, configured: float | None) -> float:
    """CPUs for each Ray Train worker: as configured, else the free CPUs shared evenly."""
    if configured:
        return configured
    # available, not total: a job's driver (entrypoint_num_cpus) or a Tune trial holds some
    free = ray.available_resources().get("CPU", 1.0)
    return max(1.0, math.floor(free / num_workers))
