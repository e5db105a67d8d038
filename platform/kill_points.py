"""Fault injection for resume tests: ``$INCDYN_KILL_AT=stage[:n]`` makes ``incdyn run`` (or
``incdyn sweep``) die by SIGKILL the ``n``-th time (default the first) a stage is reached.

The driver reads the variable; a stage reached in a Ray Train worker (a training step, a
checkpoint's save) kills the driver, whose pid the worker's config carries, then the worker
itself: the same state as a driver killed at that moment whose workers die with it. Unset, every
:func:`reached` call is a dictionary lookup. ``tests/benchmarks/fault_injection.py`` kills a run
at each of :data:`STAGES` and checks that the rerun finishes with the uninterrupted run's figures.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "INCDYN_KILL_AT"
DRIVER_ENV = "INCDYN_KILL_DRIVER_PID"  # set in a worker by :func:`arm`: the driver to kill too
STAGES = (
    "data",  # a shard of the data set written
    "train_step",  # an optimiser step taken (worker)
    "checkpoint_save",  # a checkpoint's files half written (worker)
    "checkpoint_reported",  # a checkpoint handed to Ray Train, the next step not begun (worker)
    "evaluation",  # the test split imputed, nothing logged yet
    "verification",  # the verification figures being logged
    "mlflow_logging",  # a method's test metrics being logged
    "model_registration",  # the model logged to the run, its version not registered
    "sweep_trial",  # a sweep trial's result reported
)

_counts: dict[str, int] = {}


def parse(value: str | None) -> tuple[str, int] | None:
    """``"stage[:n]"`` → ``(stage, n)``; None when unset. An unknown stage is a ValueError."""
    if not value:
        return None
    stage, _, n = value.partition(":")
    if stage not in STAGES:
        raise ValueError(f"${KILL_ENV}: unknown stage {stage!r} (one of {', '.join(STAGES)})")
    return stage, int(n or 1)


def worker_fields() -> dict[str, object]:
    """What a Ray Train worker's config carries for :func:`arm` (the driver's setting)."""
    driver = int(os.environ.get(DRIVER_ENV) or os.getpid())  # a sweep trial: its driver's
    return {"kill_at": os.environ.get(KILL_ENV), "driver_pid": driver}


def arm(config: dict) -> None:
    """In a worker: take the driver's setting from its config (:func:`worker_fields`)."""
    if config.get("kill_at"):
        os.environ[KILL_ENV] = config["kill_at"]
        os.environ[DRIVER_ENV] = str(config["driver_pid"])


def reached(stage: str) -> None:
    """Count ``stage``; SIGKILL the driver (and this process) if this is the one to die at."""
    target = parse(os.environ.get(KILL_ENV))
    if target is None or target[0] != stage:
        return
    _counts[stage] = _counts.get(stage, 0) + 1
    if _counts[stage] < target[1]:
        return
    driver = int(os.environ.get(DRIVER_ENV) or os.getpid())
    if driver != os.getpid():
        os.kill(driver, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
