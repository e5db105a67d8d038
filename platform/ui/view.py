"""The comparison view of an experiment in MLflow 3.17's UI: every method run, flat, with its tags
and test metrics as columns.

What the UI does by default, and what this module sets instead:

- Its mode (GenAI or model training) comes from the URL's ``workflowType`` query parameter, else
  the browser's last choice, else GenAI, whose experiment page is a traces overview. The
  experiment is tagged ``mlflow.experimentKind = custom_model_development`` for the UIs that read
  the tag; the view's URL carries ``workflowType=machine_learning``.
- The runs table shows only Source, Models and Dataset columns and nests child runs under a
  collapsed parent unless it is sorted by something other than the start time. The saved view
  (an experiment tag ``mlflow.sharedViewState.<id>``, listed in the runs page's *Views* menu)
  filters on ``incdyn.role = 'method'`` and FINISHED runs (a killed attempt's runs are not
  compared), sorts by the metric the experiment chooses on (so child
  runs are rows of their own), lower first, and shows the method, setting and seed tags and the
  compared ``test_*`` metrics, that metric first. The UI orders metric columns by name, whatever
  order the view lists them in, so the view lists only metrics whose names sort after it.

The metric the experiment chooses on is the test counterpart of its criterion
(``EvaluationSpec.criterion``, read from the runs' ``evaluation.*`` params): ``test_heldout_mse``
(held-out observed points, the only score of data without truth) unless the experiment chooses on
truth (``select_on: truth``, or no held-out points), then ``test_mse``.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from mlflow.tracking import MlflowClient

from incdyn.platform.report.comparison import compared_metric
from incdyn.platform.tracking import (
    EXPERIMENT_KIND_TRAINING,
    ROLE_METHOD,
    TAG_EXPERIMENT_KIND,
    TAG_METHOD,
    TAG_ROLE,
    TAG_SAVED_VIEW_PREFIX,
    TAG_SEED,
    TAG_SETTING,
)

VIEW_ID = "incdyn-methods"
VIEW_NAME = "incdyn: methods"
HELDOUT_METRIC, TRUTH_METRIC = "test_heldout_mse", "test_mse"
# after the chosen metric, in this order where logged; then the others by name
DEFAULT_METRICS = (
    TRUTH_METRIC,
    HELDOUT_METRIC,
    "test_mse_unobserved",
    "test_crps",
    "test_crps_heldout",
)
MAX_METRICS = 3
TAG_COLUMNS = (TAG_METHOD, TAG_SETTING, TAG_SEED)


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"  # the UI's column id, e.g. metrics.`test_mse`


def view_state(metrics: list[str]) -> dict:
    """The runs page's state: search facets and the columns (unset keys keep the UI's defaults);
    sorted by the first metric, lowest first."""
    columns = [_column("tags", t) for t in TAG_COLUMNS] + [_column("metrics", m) for m in metrics]
    return {
        "searchFilter": f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}' and attributes.status = 'FINISHED'",
        "orderByKey": _column("metrics", metrics[0]),
        "orderByAsc": True,
        "selectedColumns": columns,
    }


def chosen_metric(runs: list) -> str:
    """The test metric the experiment chooses on (see the module's docstring): ``test_mse`` when
    a run chose on truth or none logged ``test_heldout_mse``, else ``test_heldout_mse``."""
    on_truth = any(r.data.params.get("evaluation.select_on") == "truth" for r in runs)
    heldout = any(HELDOUT_METRIC in r.data.metrics for r in runs)
    truth = any(TRUTH_METRIC in r.data.metrics for r in runs)
    return TRUTH_METRIC if (on_truth and truth) or not heldout else HELDOUT_METRIC


def metric_columns(client: MlflowClient, experiment_id: str) -> list[str]:
    """The compared ``test_*`` metrics the experiment's method runs logged, the one it chooses on
    first and then those whose names sort after it (the UI's column order), at most
    ``MAX_METRICS``: the UI puts tag columns after the metric columns and renders only the
    columns in sight, so a wider table would hide the method, setting and seed."""
    runs = client.search_runs(
        [experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'", max_results=500
    )
    keys = {k for r in runs for k in r.data.metrics if compared_metric(k)}
    lead = chosen_metric(runs)
    after = {k for k in keys if k > lead}  # a name sorting before the lead would precede it
    first = [lead] + [m for m in DEFAULT_METRICS if m in after]
    return (first + sorted(after - set(first)))[:MAX_METRICS]


def mark_experiment(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as model training and (re)write its comparison view."""
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(TAG_EXPERIMENT_KIND) != EXPERIMENT_KIND_TRAINING:
        client.set_experiment_tag(experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND_TRAINING)
    key = TAG_SAVED_VIEW_PREFIX + VIEW_ID
    state = json.dumps(view_state(metric_columns(client, experiment_id)), sort_keys=True)
    try:
        old = json.loads(experiment.tags.get(key, "{}"))
    except json.JSONDecodeError:
        old = {}
    if old.get("state") == state and old.get("name") == VIEW_NAME:
        return
    now = int(time.time() * 1000)
    envelope = {"name": VIEW_NAME, "createdAt": old.get("createdAt", now), "updatedAt": now}
    client.set_experiment_tag(experiment_id, key, json.dumps({**envelope, "state": state}))


def comparison_url(base_url: str, experiment_id: str) -> str:
    """The runs page of the experiment in model-training mode, opened on the comparison view."""
    query = urlencode({"workflowType": "machine_learning", "viewStateShareKey": VIEW_ID})
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def artifact_url(base_url: str, experiment_id: str, run_id: str, path: str) -> str:
    """The run page's artifact browser, opened on ``path`` (e.g. the comparison figure)."""
    page = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}"
    return f"{page}?{urlencode({'workflowType': 'machine_learning'})}"
