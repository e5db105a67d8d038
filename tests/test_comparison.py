"""The methods compared on a parent run (figures from the method runs alone) and the MLflow UI's
comparison view (experiment tags, the saved view, its URL), on synthetic MLflow runs."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
from matplotlib.container import BarContainer
from mlflow.tracking import MlflowClient

from incdyn.platform.cli import main
from incdyn.platform.report.comparison import (
    log_parent_comparison,
    metrics_figure,
    sample_figure,
)
from incdyn.platform.tracking import (
    COMPARISON_FIGURE,
    METRICS_FIGURE,
    ROLE_METHOD,
    TAG_EXPERIMENT_KIND,
    TAG_ROLE,
    TAG_SAVED_VIEW_PREFIX,
    log_evaluation,
    read_example,
)
from incdyn.platform.ui import cli as ui_cli
from incdyn.platform.ui.view import VIEW_ID, artifact_url, comparison_url, mark_experiment

METHODS = {"ours": 0.1, "missdiff": 0.3, "ns_inpaint": 0.5}  # error scale of each method's guess


def _example(scale: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)  # the same test sample for every method
    truth = rng.normal(size=(4, 2, 8, 8)).astype(np.float32)
    mask = rng.random((4, 8, 8)) < 0.3
    noise = np.random.default_rng(seed + 1).normal(scale=scale, size=truth.shape)
    imputed = np.where(mask[:, None], truth, truth + noise).astype(np.float32)
    return truth, mask, imputed


@pytest.fixture()
def parent(tmp_path):
    """A parent run and, per method × seed 0, 1, a FINISHED child with metrics and example."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("compare", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(exp, tags={"incdyn.role": "experiment"}).info.run_id
    values = {}
    for method, scale in METHODS.items():
        for seed in (0, 1):
            tags = {"incdyn.role": "method", "incdyn.method": method, "incdyn.seed": str(seed)}
            run = client.create_run(exp, tags={**tags, "mlflow.parentRunId": parent})
            metrics = {"test_mse": scale**2 + 0.01 * seed, "test_mse_unobserved": scale + seed}
            log_evaluation(client, run.info.run_id, metrics, example=_example(scale, seed=seed))
            client.set_terminated(run.info.run_id)
            values.setdefault(method, []).append(metrics["test_mse"])
    return client, exp, parent, values


def test_example_round_trips_through_mlflow(parent):
    client, exp, _, _ = parent
    run = client.search_runs([exp], "tags.`incdyn.method` = 'ours' and tags.`incdyn.seed` = '0'")[0]
    example = read_example(client, run.info.run_id)
    for name, array in zip(("truth", "mask", "imputed"), _example(0.1), strict=True):
        np.testing.assert_array_equal(example[name], array)


def test_parent_gets_the_sample_and_the_metrics_figures(parent):
    client, _, parent_id, _ = parent
    logged = log_parent_comparison(client, parent_id, title="compare")
    assert logged == [COMPARISON_FIGURE, METRICS_FIGURE]
    assert {a.path for a in client.list_artifacts(parent_id, "figures")} == set(logged)


def test_sample_figure_shows_truth_observed_and_each_method_with_its_error():
    truth, mask, _ = _example(0.0)
    imputed = {m: _example(s)[2] for m, s in METHODS.items()}
    fig = sample_figure(truth, mask, imputed, title="t")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:5] == ["truth", "observed", "ours", "missdiff", "ns_inpaint"]
    errors = [t for t in titles if "error" in t]
    assert [t.split()[0] for t in errors] == list(METHODS)
    # the error title's MSE is over the frame's unobserved points
    f, unobserved = truth.shape[0] // 2, ~mask[truth.shape[0] // 2]
    mse = np.mean((imputed["ours"][f, 0] - truth[f, 0])[unobserved] ** 2)
    assert f"{mse:.3g}" in errors[0]


def test_metrics_figure_bars_are_means_with_seed_std(parent):
    _, _, _, values = parent
    fig = metrics_figure({"test_mse": values}, title="t")
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([statistics.fmean(v) for v in values.values()])
    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    caps = bars.errorbar.lines[2][0].get_segments()  # one vertical error bar per method
    spans = [seg[1][1] - seg[0][1] for seg in caps]
    assert spans == pytest.approx([2 * statistics.stdev(v) for v in values.values()])


def test_mark_experiment_tags_training_kind_and_the_methods_view(parent):
    client, exp, _, _ = parent
    mark_experiment(client, exp)
    tags = client.get_experiment(exp).tags
    assert tags[TAG_EXPERIMENT_KIND] == "custom_model_development"
    envelope = json.loads(tags[TAG_SAVED_VIEW_PREFIX + VIEW_ID])
    state = json.loads(envelope["state"])
    assert state["searchFilter"] == (
        "tags.`incdyn.role` = 'method' and attributes.status = 'FINISHED'"
    )
    assert state["orderByKey"] == "metrics.`test_mse`"  # not the start time: children not nested
    assert state["selectedColumns"] == [
        "tags.`incdyn.method`",
        "tags.`incdyn.setting`",
        "tags.`incdyn.seed`",
        "metrics.`test_mse`",
        "metrics.`test_mse_unobserved`",
    ]
    mark_experiment(client, exp)  # unchanged state: the tag is not rewritten
    assert json.loads(client.get_experiment(exp).tags[TAG_SAVED_VIEW_PREFIX + VIEW_ID]) == envelope


def test_urls_open_model_training_mode():
    assert comparison_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs"
        "?workflowType=machine_learning&viewStateShareKey=incdyn-methods"
    )
    assert artifact_url("http://h:1", "7", "r", COMPARISON_FIGURE) == (
        "http://h:1/#/experiments/7/runs/r/artifacts/figures/comparison.png"
        "?workflowType=machine_learning"
    )


def _ui(*argv: str) -> int:
    return main(["ui", *argv])


def test_ui_names_a_missing_experiment_and_what_the_store_holds(parent, capsys):
    client, _, _, _ = parent
    assert _ui("--experiment", "nope", "--tracking-uri", client.tracking_uri) == 2
    err = capsys.readouterr().err
    assert "no MLflow experiment 'nope'" in err and "compare" in err


def test_ui_prints_the_view_and_the_latest_comparison_figure(parent, capsys):
    client, exp, parent_id, _ = parent
    client.set_terminated(parent_id)
    ui_cli.print_urls(client, "http://127.0.0.1:5000", [client.get_experiment(exp)])
    out = capsys.readouterr().out
    assert comparison_url("http://127.0.0.1:5000", exp) in out
    assert artifact_url("http://127.0.0.1:5000", exp, parent_id, COMPARISON_FIGURE) in out


def test_the_view_shows_the_compared_test_metrics_and_keeps_its_tag_columns_in_sight(tmp_path):
    """The K-curve and per-sampler readings are not columns (they would push the method,
    setting and seed out of the rendered part of the table); at most MAX_METRICS metrics."""
    from incdyn.platform.ui.view import MAX_METRICS, metric_columns, view_state

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("view", artifact_location=tmp_path.as_uri())
    run = client.create_run(experiment_id, tags={TAG_ROLE: ROLE_METHOD})
    names = ["test_mse", "test_mse_unobserved", "test_crps", "test_coverage_90", "test_mse_k5",
             "test_mse_k_fit_a", "test_crps_single", "test_better_calibrated", "val_mse",
             "test_spread_skill", "test_coverage_50", "test_heldout_mse"]  # fmt: skip
    for name in names:
        client.log_metric(run.info.run_id, name, 1.0)
    columns = metric_columns(client, experiment_id)  # chosen on held-out points: it leads
    assert columns == ["test_heldout_mse", "test_mse", "test_mse_unobserved"][:MAX_METRICS]
    assert not {"test_mse_k5", "test_mse_k_fit_a", "test_crps_single", "val_mse"} & set(columns)
    state = view_state(columns)
    assert state["selectedColumns"][:3] == [
        "tags.`incdyn.method`", "tags.`incdyn.setting`", "tags.`incdyn.seed`"
    ]  # fmt: skip
    assert state["orderByKey"] == "metrics.`test_heldout_mse`" and state["orderByAsc"]
    client.log_param(run.info.run_id, "evaluation.select_on", "truth")  # chosen on truth
    assert metric_columns(client, experiment_id)[:2] == ["test_mse", "test_mse_unobserved"]


def test_the_view_of_data_without_truth_leads_with_the_held_out_score(tmp_path):
    """The UI orders metric columns by name: a coverage column (``test_coverage_…``) would come
    before ``test_heldout_mse``, so the view leaves it out (the Columns menu adds it)."""
    from incdyn.platform.ui.view import metric_columns, view_state

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("real", artifact_location=tmp_path.as_uri())
    run = client.create_run(experiment_id, tags={TAG_ROLE: ROLE_METHOD})
    for name in ("test_coverage_50_heldout", "test_calibrated_coverage_90_heldout",
                 "test_heldout_mse", "test_spread_skill_heldout"):  # fmt: skip
        client.log_metric(run.info.run_id, name, 1.0)
    columns = metric_columns(client, experiment_id)
    assert columns == ["test_heldout_mse", "test_spread_skill_heldout"]
    assert view_state(columns)["orderByKey"] == "metrics.`test_heldout_mse`"
