"""The sweep's choice of the best configuration: validation imputation error, never the loss."""

from __future__ import annotations

import math

import pytest

from incdyn.platform.sweep.summary import TrialRecord, summarize


def trial(ctx: float, seed: int, val_loss, val_mse, test_mse, status="FINISHED") -> TrialRecord:
    return TrialRecord(
        run_id=f"r{ctx}-{seed}",
        status=status,
        context_ratio=ctx,
        query_ratio=0.7,
        backbone="fno",
        seed=seed,
        val_loss=val_loss,
        val_mse=val_mse,
        test_mse=test_mse,
        test_mse_unobserved=None,
    )


def test_best_is_lowest_mean_val_mse_even_where_val_loss_disagrees():
    # A smaller context is a harder denoising task (larger loss) yet may impute better: the
    # pattern of claim 3's pilot (context ratio 0.3 vs 0.7 on Shallow Water 80 %).
    trials = [
        trial(0.3, 0, val_loss=0.9, val_mse=0.028, test_mse=0.030),
        trial(0.3, 1, val_loss=0.8, val_mse=0.030, test_mse=0.029),
        trial(0.7, 0, val_loss=0.4, val_mse=0.034, test_mse=0.020),  # best test: never chooses
        trial(0.7, 1, val_loss=0.5, val_mse=0.036, test_mse=0.021),
        trial(0.5, 0, None, None, None, status="KILLED"),  # stopped early: not evaluated
    ]
    result = summarize(
        trials, mode="grid", parent_run_id="p", experiment="e", seconds=1.0, criterion="val_mse"
    )
    assert [c.context_ratio for c in result.configs] == [0.3, 0.7]
    best = result.best
    assert best.n == 2 and best.val_mse == pytest.approx(0.029)
    assert best.val_loss == pytest.approx(0.85) and best.test_mse == pytest.approx(0.0295)
    assert math.isnan(best.test_mse_unobserved)
    assert "lowest mean val_mse" in result.describe()
    assert "| 0.85 | **0.029** |" in result.table()


def test_a_trial_finished_without_val_mse_is_not_ranked():
    trials = [trial(0.3, 0, val_loss=0.9, val_mse=None, test_mse=0.03)]
    result = summarize(
        trials, mode="grid", parent_run_id="p", experiment="e", seconds=1.0, criterion="val_mse"
    )
    assert result.best is None and "no trial finished" in result.describe()
