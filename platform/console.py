"""What ``incdyn run`` and ``incdyn sweep`` print: progress bars, not Ray's raw logs.

By default Ray's worker and actor output stays out of the console (``log_to_driver=False``;
it is still in the session's log files) and Ray's Train/Tune loggers say only warnings: no
``Reporting training result N`` line per report, no ``Checkpoint successfully created``, no
harmless internal errors. ``--verbose`` brings them all back. What the user follows instead:

- one bar per training: step of ``training.steps``, train and val loss, steps/s and the ETA,
  read from the method's MLflow run, where the rank-0 worker logs the curves; on a rerun it
  counts the steps left (a resumed training's from its checkpoint's step) and ends at 100 %;
- on a rerun, one line per training saying what was found (:func:`resume_line`);
- one per evaluation (samples imputed) and one per sweep (trials finished, best value of the criterion that chooses).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager, suppress
from typing import Any

from tqdm import tqdm

RAY_LOGGERS = ("ray", "ray.train", "ray.tune", "ray.data", "ray.serve")
POLL_S = 2.0  # seconds between reads of the MLflow store


def configure(verbose: bool) -> None:
    """Ray's driver-side loggers at WARNING unless ``verbose``."""
    if verbose:
        return
    for name in RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def resume_line(label: str, step: int, steps: int) -> str:
    """What a rerun found of a training: finished, part-trained, or nothing to resume from."""
    if step >= steps:
        return f"{label}: found finished (step {steps}), not trained again"
    if step > 0:
        return f"{label}: resumed from step {step} of {steps}"
    return f"{label}: no whole checkpoint found, trained from step 0"


@contextmanager
def training_bar(
    tracking_uri: str,
    run_ids: list[str] | str | None,
    total: int,
    desc: str,
    started: dict[str, int] | None = None,
):
    """A bar over ``total`` optimiser steps, fed by the MLflow metrics of the runs that train
    (one after the other: the postfix shows the latest run that logged a step).

    ``started``: per run, the step its training resumes from (its curve starts after it), for a
    ``total`` of the steps left. The bar ends at ``total`` when the block ends without error.
    """
    run_ids = [run_ids] if isinstance(run_ids, str) else list(run_ids or [])
    started = started or {}
    if not run_ids:
        yield
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    stop = threading.Event()
    bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)

    def refresh() -> None:
        steps, current = 0, None
        for run_id in run_ids:
            history = client.get_metric_history(run_id, "train_loss")
            if history:
                steps += max(0, max(m.step for m in history) - started.get(run_id, 0))
                current = run_id
        if current is None:
            return
        bar.update(steps - bar.n)
        metrics = client.get_run(current).data.metrics
        shown = {"loss": "train_loss", "val": "val_loss", "steps/s": "steps_per_s"}
        bar.set_postfix(
            {k: f"{metrics[m]:.4g}" for k, m in shown.items() if m in metrics}, refresh=True
        )

    def poll() -> None:
        while not stop.wait(POLL_S):
            with suppress(Exception):  # a busy store: try again at the next tick
                refresh()

    thread = threading.Thread(target=poll, name="training-bar", daemon=True)
    thread.start()
    try:
        yield
        finished = True
    except BaseException:
        finished = False
        raise
    finally:
        stop.set()
        thread.join()
        with suppress(Exception):
            refresh()
        if finished:
            bar.update(total - bar.n)
        bar.close()


def evaluation_bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="sample", dynamic_ncols=True, leave=False)


def trial_bar_callback(total: int, metric: str = "val_mse"):
    """A Tune callback: a bar over the sweep's trials, with the best ``metric`` so far."""
    from ray import tune

    class TrialBar(tune.Callback):
        def __init__(self) -> None:
            self.bar = tqdm(total=total, desc="trials", unit="trial", dynamic_ncols=True)
            self.best: float | None = None
            self.done, self.failed = 0, 0

        def _done(self, trial: Any) -> None:
            value = (trial.last_result or {}).get(metric)
            if value is not None and (self.best is None or value < self.best):
                self.best = value
            post = {f"best {metric}": f"{self.best:.4g}"} if self.best is not None else {}
            if self.failed:
                post["failed"] = self.failed
            self.done += 1
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._done(trial)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self.failed += 1
            self._done(trial)

        def on_experiment_end(self, trials, **info) -> None:
            self.bar.close()

    return TrialBar()
