"""Connect to Ray: the cluster in ``$RAY_ADDRESS`` (``ray job submit`` sets it) or a new local one.

``address="local"`` avoids attaching to a stale ``/tmp/ray/ray_current_cluster`` left by a killed
head (a plain ``ray.init()`` keeps trying to reach it).
"""

from __future__ import annotations

import logging
import math
import os

import ray


def init_ray(address: str | None = None, *, verbose: bool = True) -> None:
    """``verbose=False``: workers' and actors' output stays in Ray's log files (console.py)."""
    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=target, logging_level=logging.WARNING, log_to_driver=verbose)


def cpus_per_worker(num_workers: int, configured: float | None) -> float:
    """CPUs for each Ray Train worker: as configured, else the free CPUs shared evenly."""
    if configured:
        return configured
    # available, not total: a job's driver (entrypoint_num_cpus) or a Tune trial holds some
    free = ray.available_resources().get("CPU", 1.0)
    return max(1.0, math.floor(free / num_workers))
