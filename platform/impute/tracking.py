"""An imputation as an MLflow run: the model, the input, the output, the held-out scores and
the wall time."""

from __future__ import annotations

from typing import Any

from mlflow.tracking import MlflowClient

from incdyn.platform.tracking import resolve_tracking_uri

EXPERIMENT = "incdyn-impute"


def log_imputation(prepared: Any, summary: Any) -> str:
    """Record one finished imputation; returns the run id."""
    client = MlflowClient(resolve_tracking_uri(prepared.options.tracking_uri))
    found = client.get_experiment_by_name(EXPERIMENT)
    experiment = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    run = client.create_run(experiment, run_name=f"impute {summary.method}")
    rid = run.info.run_id
    for key, value in prepared.settings.items():
        client.log_param(rid, key, str(value)[:500])
    client.log_param(rid, "output", summary.output)
    client.set_tag(rid, "incdyn.kind", "impute")
    metrics = {
        "wall_s": summary.wall_s,
        "frames": summary.frames,
        "points_filled": summary.filled,
        "observed_share": summary.observed_share,
        "empty_frames": summary.empty_frames,
    }
    for name, rmse in summary.heldout_rmse.items():
        metrics[f"heldout_rmse_{name}"] = rmse
        metrics[f"heldout_coverage_{name}"] = summary.heldout_coverage[name]
    for key, value in metrics.items():
        if value == value:  # NaN is not logged
            client.log_metric(rid, key, float(value))
    client.set_terminated(rid)
    return rid
