"""The learning-rate schedule of the training loop: linear warm-up, then constant or cosine."""

from __future__ import annotations

import math

from incdyn.platform.spec import TrainingSpec


def learning_rate(step: int, training: TrainingSpec) -> float:
    """The learning rate of optimiser step ``step`` (0-based): a linear warm-up over
    ``warmup_steps``, then constant or a cosine decay that reaches 0 at step ``steps``."""
    lr, warm, total = training.lr, training.warmup_steps, training.steps
    if warm and step < warm:
        return lr * (step + 1) / warm
    if training.lr_schedule == "cosine":
        progress = (step - warm) / max(1, total - warm)
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return lr
