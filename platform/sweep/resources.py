"""How many sweep trials run at once, and the CPUs of their Ray Train workers.

A Tune trial here is a function that only waits on the ``TorchTrainer`` it builds: it holds a
token ``TRIAL_CPU``, its Train workers hold the real resources. Concurrent trials must fit
together: otherwise running trials' functions hold the CPUs that their own Train workers wait for,
forever (seen on a 2-core machine: Train workers waiting for CPUs that never free up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ray

from incdyn.datasets.errors import UserError

TRIAL_CPU = 0.01  # the trial function's own actor ({"cpu": 0} is refused by Tune)


@dataclass(frozen=True)
class TrialResources:
    concurrent: int  # trials at once (Tune's max_concurrent_trials)
    cpus_per_worker: float  # CPUs of each Ray Train worker of a trial


def plan_resources(
    *,
    num_workers: int,
    use_gpu: bool,
    cpus_per_worker: float | None,
    n_trials: int,
    cluster_cpus: float,
    cluster_gpus: float = 0.0,
    node_cpus: float | None = None,
    max_concurrent: int | None = None,
) -> TrialResources:
    """How many trials run at once, and the CPUs of each of their Train workers.

    A trial holds ``TRIAL_CPU`` plus ``num_workers × cpus_per_worker`` CPUs (and one GPU per
    worker when ``use_gpu``). Unset ``cpus_per_worker`` shares the cluster's CPUs evenly among
    the concurrent trials (on 2 CPUs: 2 trials of one 0.99-CPU worker each), each worker capped
    at the largest node's CPUs.
    """
    if cpus_per_worker:
        fit = math.floor(cluster_cpus / (num_workers * cpus_per_worker + TRIAL_CPU) + 1e-9)
        if fit < 1:
            raise UserError(
                "ray.cpus_per_worker",
                f"a trial needs {num_workers} workers × {cpus_per_worker} CPUs (+{TRIAL_CPU}); "
                f"the cluster has {cluster_cpus} CPUs",
                "lower ray.cpus_per_worker or ray.num_workers",
            )
    else:
        fit = max(1, math.floor(cluster_cpus / num_workers + 1e-9))
    if use_gpu:
        by_gpu = math.floor(cluster_gpus / num_workers + 1e-9)
        if by_gpu < 1:
            raise UserError(
                "ray.use_gpu",
                f"a trial needs {num_workers} GPUs; the cluster has {cluster_gpus}",
                "lower ray.num_workers, or set ray.use_gpu: false",
            )
        fit = min(fit, by_gpu)
    concurrent = max(1, min(fit, n_trials, max_concurrent or fit))
    if cpus_per_worker:
        return TrialResources(concurrent, cpus_per_worker)
    share = (cluster_cpus / concurrent - TRIAL_CPU) / num_workers
    if node_cpus:  # one worker's bundle must fit on one node
        share = min(share, node_cpus - TRIAL_CPU)
    return TrialResources(concurrent, math.floor(share * 100) / 100)


def cluster_resources() -> tuple[float, float, float]:
    """(CPUs, GPUs, CPUs of the largest alive node) of the connected Ray cluster."""
    total = ray.cluster_resources()
    nodes = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    return total.get("CPU", 1.0), total.get("GPU", 0.0), max(nodes, default=total.get("CPU", 1.0))
