"""Wall-time phases: what a run logs as ``time_<phase>_s`` adds up to its wall time."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from incdyn.platform.timings import Timings, is_timing, metric_name
from incdyn.platform.train.driver import training_phases


def test_phases_and_other_sum_to_the_total():
    t = Timings()
    with t.phase("a"):
        time.sleep(0.02)
    time.sleep(0.02)  # covered by no phase: time_other_s
    with t.phase("b"):
        time.sleep(0.01)
    t.add("a", 0.0)
    m = t.metrics()
    assert set(m) == {"time_a_s", "time_b_s", "time_other_s", "time_total_s"}
    parts = m["time_a_s"] + m["time_b_s"] + m["time_other_s"]
    assert parts == pytest.approx(m["time_total_s"], abs=1e-6)
    assert m["time_a_s"] >= 0.02 and m["time_b_s"] >= 0.01 and m["time_other_s"] >= 0.02


def test_a_phase_that_raises_is_still_counted():
    t = Timings()
    with pytest.raises(ValueError), t.phase("broken"):
        raise ValueError("boom")
    assert "broken" in t.seconds


def test_timing_names():
    assert metric_name("steps") == "time_steps_s"
    assert is_timing("time_steps_s") and not is_timing("time_to") and not is_timing("val_s")


def _result(metrics):
    return SimpleNamespace(metrics=metrics)


def test_training_phases_take_the_workers_and_leave_the_rest_to_ray():
    reported = {"time_steps_s": 3.0, "time_worker_setup_s": 1.0, "train_loss": 0.5,
                "worker_started_at": 1000.0}  # fmt: skip
    phases = training_phases(_result(reported), started_at=999.0, seconds=10.0)
    assert phases == {"steps": 3.0, "worker_setup": 1.0, "train_overhead": 6.0}
    assert sum(phases.values()) == pytest.approx(10.0)


def test_training_phases_ignore_a_worker_of_an_earlier_call():
    # a run found finished: its stored last report is from a worker that ran long before
    reported = {"time_steps_s": 30.0, "worker_started_at": 100.0}
    assert training_phases(_result(reported), started_at=5000.0, seconds=0.5) == {
        "train_overhead": 0.5
    }
    assert training_phases(_result(None), started_at=5000.0, seconds=0.5) == {"train_overhead": 0.5}
