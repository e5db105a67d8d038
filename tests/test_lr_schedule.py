"""The learning-rate schedule: linear warm-up, then constant or a cosine decay to 0."""

from __future__ import annotations

import itertools
import math

import pytest

from incdyn.platform.spec import TrainingSpec
from incdyn.platform.train.lr_schedule import learning_rate


def test_warmup_rises_linearly_to_the_base_rate():
    t = TrainingSpec(lr=0.01, steps=100, warmup_steps=10, lr_schedule="constant")
    assert [learning_rate(s, t) for s in range(3)] == pytest.approx([0.001, 0.002, 0.003])
    assert learning_rate(9, t) == pytest.approx(0.01)
    assert all(learning_rate(s, t) == 0.01 for s in range(10, 100))


def test_cosine_decays_from_the_base_rate_to_zero_at_the_last_step():
    t = TrainingSpec(lr=0.02, steps=110, warmup_steps=10, lr_schedule="cosine")
    assert learning_rate(10, t) == pytest.approx(0.02)  # end of warm-up: the top
    assert learning_rate(60, t) == pytest.approx(0.01)  # half way: cos(π/2) → half
    assert learning_rate(35, t) == pytest.approx(0.01 * (1 + math.cos(math.pi / 4)))
    assert learning_rate(110, t) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(500, t) == pytest.approx(0.0, abs=1e-12)  # past the end: stays 0
    rates = [learning_rate(s, t) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(rates))  # never rises


def test_no_warmup_starts_at_the_base_rate():
    t = TrainingSpec(lr=0.005, steps=50, warmup_steps=0, lr_schedule="cosine")
    assert learning_rate(0, t) == pytest.approx(0.005)
