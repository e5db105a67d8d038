"""Where a run's wall time goes: named phases, summed, logged as ``time_<phase>_s`` metrics.

A :class:`Timings` accumulates the seconds spent in each phase (``with timings.phase("x"):``
or :meth:`Timings.add`); :meth:`Timings.metrics` names them ``time_<phase>_s`` and adds
``time_total_s``, the wall time since the object was made, and ``time_other_s``, the part of it
that no phase covers. The phases of one object must not overlap, so that they and
``time_other_s`` sum to ``time_total_s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX, SUFFIX = "time_", "_s"


def metric_name(phase: str) -> str:
    return f"{PREFIX}{phase}{SUFFIX}"


def is_timing(name: str) -> bool:
    """Whether ``name`` is a phase's metric (``time_<phase>_s``)."""
    return name.startswith(PREFIX) and name.endswith(SUFFIX)


class Timings:
    """Seconds per phase since construction (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(0.0, float(seconds))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` that this run spent waiting for other runs' work (a shared worker
        group's other trainings) out of its total."""
        self.start += max(0.0, float(seconds))

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def metrics(self) -> dict[str, float]:
        """``time_<phase>_s`` per phase, ``time_other_s`` (not covered) and ``time_total_s``."""
        total = self.elapsed()
        out = {metric_name(k): v for k, v in self.seconds.items()}
        out[metric_name("other")] = max(0.0, total - sum(self.seconds.values()))
        out[metric_name("total")] = total
        return out
