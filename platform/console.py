"""What ``incdyn`` prints: its own lines and progress bars, not its libraries' logs.

By default Ray's worker and actor output stays out of the console (``log_to_driver=False``;
it is still in the session's log files) and Ray's Train/Tune loggers say only warnings: no
``Reporting training result N`` line per report, no ``Checkpoint successfully created``, no
harmless internal errors. What the libraries say in the driver goes to one log file per
command (:func:`log_file`, named in one line when the command ends): Ray's and MLflow's log
records below ERROR (Ray's token-authentication notice, MLflow's store creation and migrations,
its registered-model lines) and Python warnings raised outside incdyn. A warning raised by
incdyn itself, such as :class:`~incdyn.datasets.errors.DataAssumption` (what was assumed about
the user's data), is one ``incdyn: warning:`` line. ``--verbose`` leaves all of it on the
console. What the user follows instead:

- one bar per training: step of ``training.steps``, train and val loss, steps/s and the ETA,
  read from the method's MLflow run, where the rank-0 worker logs the curves; on a rerun it
  counts the steps left (a resumed training's from its checkpoint's step) and ends at 100 %;
- on a rerun, one line per training saying what was found (:func:`resume_line`);
- one per evaluation (samples imputed) and one per sweep (trials finished, best value of the criterion that chooses).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tqdm import tqdm

RAY_LOGGERS = ("ray", "ray.train", "ray.tune", "ray.data", "ray.serve")
# loggers whose records go to the log file; their own console handlers keep ERROR and above
ROUTED_LOGGERS = ("ray", "ray.data", "mlflow", "alembic", "huey", "py.warnings")
LOG_DIR_ENV = "INCDYN_LOG_DIR"  # where the log files go (default: $TMPDIR/incdyn/logs)
POLL_S = 2.0  # seconds between reads of the MLflow store
# incdyn's own source folders: a warning raised here is for the user (one console line)
OWN_CODE = tuple(
    str(Path(__file__).resolve().parents[1] / d) for d in ("platform", "models", "datasets")
)

_log: logging.FileHandler | None = None  # the command's log file, once configure() made it quiet
_mlflow_env_set = False  # configure() set MLFLOW_CONFIGURE_LOGGING and MLflow has not read it
_errors = logging.StreamHandler()  # stderr, for the routed loggers that have no console handler
_errors.setLevel(logging.ERROR)


def configure(verbose: bool) -> None:
    """A quiet console unless ``verbose``: libraries' log records and warnings to :func:`log_file`.

    Idempotent; called again after Ray is imported (:func:`route_libraries`)."""
    global _log, _mlflow_env_set
    if verbose:
        return
    for name in RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow installs a stderr handler when imported unless told not to; its records then reach
    # the handler set here. Set before MLflow's first import (a later one finds it too).
    if "MLFLOW_CONFIGURE_LOGGING" not in os.environ and "mlflow" not in sys.modules:
        os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
        _mlflow_env_set = True
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # 'View run ...'
    if _log is None:
        folder = Path(
            os.environ.get(LOG_DIR_ENV) or Path(tempfile.gettempdir()) / "incdyn" / "logs"
        )
        name = f"incdyn-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        _log = logging.FileHandler(folder / name, delay=True)  # created by the first record
        _log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        folder.mkdir(parents=True, exist_ok=True)
    logging.getLogger("mlflow").setLevel(logging.INFO)  # as MLflow itself sets it
    route_libraries()
    warnings.showwarning = _show_warning


def route_libraries() -> None:
    """Send the routed loggers' records to the log file; their console handlers keep ERROR+.

    Ray adds its console handler when imported: :func:`incdyn.platform.ray_session.init_ray`
    calls this again before ``ray.init``."""
    if _log is None:
        return
    global _mlflow_env_set
    if _mlflow_env_set and "mlflow" in sys.modules:  # read: Ray's workers keep MLflow's default
        os.environ.pop("MLFLOW_CONFIGURE_LOGGING", None)
        _mlflow_env_set = False
    for name in ROUTED_LOGGERS:
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler is not _log:
                handler.setLevel(max(handler.level, logging.ERROR))
        if not [h for h in logger.handlers if h is not _log]:  # errors still reach the console
            logger.addHandler(_errors)
        if _log not in logger.handlers:
            logger.addHandler(_log)
        logger.propagate = False


def quiet() -> bool:
    """True when :func:`configure` routed the libraries' output to the log file."""
    return _log is not None


def log_file() -> Path | None:
    """The log file, once something was written to it; else None."""
    if _log is None or _log.stream is None:
        return None
    _log.flush()
    return Path(_log.baseFilename)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """incdyn's own warnings: one console line; anyone else's: the log file."""
    if str(Path(filename).resolve()).startswith(OWN_CODE):
        print(f"incdyn: warning: {message}", file=sys.stderr, flush=True)
        return
    text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
    logging.getLogger("py.warnings").warning(text)


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
