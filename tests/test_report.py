"""`incdyn report`: the methods × settings table rebuilt from MLflow runs alone."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import statistics

import pytest
from conftest import clocked_client, tiny_spec
from matplotlib.figure import Figure

from incdyn.platform.report import cli as report_cli
from incdyn.platform.report.tables import build_report, log_report
from incdyn.platform.spec import ExperimentSpec, parse_spec
from incdyn.platform.tracking import (
    ROLE_EXPERIMENT,
    ROLE_METHOD,
    log_evaluation,
    run_scope,
    start_child,
    start_parent,
)

# (setting, method) → test_mse per seed 0, 1, 2 of the latest parent run of each setting
LATEST = {
    ("navier_stokes pixel 20%", "ours"): [0.010, 0.012, 0.011],
    ("navier_stokes pixel 20%", "missdiff"): [0.030, 0.026, 0.034],
    ("navier_stokes pixel 20%", "ns_inpaint"): [0.050],
    ("navier_stokes pixel 60%", "ours"): [0.004, 0.006, 0.005],
    ("navier_stokes pixel 60%", "missdiff"): [0.003, 0.004, 0.0035],
    ("navier_stokes pixel 60%", "ns_inpaint"): [0.020],
}
OLD = {("navier_stokes pixel 20%", "ours"): [0.9, 0.8, 0.7]}  # an earlier run of the same spec


P = {"navier_stokes pixel 20%": 0.2, "navier_stokes pixel 60%": 0.6}  # setting → observed p
METHODS = [
    {"name": "ours"},
    {"name": "missdiff", "partition": {"context_ratio": 1.0, "query_ratio": 1.0}},
    {"name": "ns_inpaint", "kind": "inpaint_ns"},
]


def _spec(setting: str, *, seed: int = 0) -> ExperimentSpec:
    """The spec of one setting (one parent run per setting, as ``incdyn run`` of a variant)."""
    p = P[setting]
    spec = parse_spec(
        tiny_spec(name=f"table-p{p}", store="memory://table", p=p, methods=METHODS, seed=seed)
    )
    assert spec.setting == setting
    return spec


def _parent(client, exp_id, setting, *, finished=True, start=0) -> str:
    client.now = start
    spec = _spec(setting)
    run_id = start_parent(client, exp_id, spec, role=ROLE_EXPERIMENT, run_name=spec.name)
    if finished:
        client.set_terminated(run_id, "FINISHED")
    return run_id


def _child(client, exp_id, parent, setting, method, seed, value, *, fails=False, start=0):
    """A method's run as ``incdyn run`` records it: its test MSE (if any), then FINISHED, or
    FAILED when the method raises."""
    client.now = start
    spec = _spec(setting, seed=seed)
    run_id = start_child(
        client, exp_id, parent, spec, spec.method(method), role=ROLE_METHOD, run_name=method
    )
    with contextlib.suppress(RuntimeError), run_scope(client, run_id):
        if value is not None:
            log_evaluation(client, run_id, {"test_mse": value})
        if fails:
            raise RuntimeError("the method failed")


def _record(client, exp_id, values: dict, *, start: int) -> dict[str, str]:
    parents = {}
    for i, setting in enumerate(dict.fromkeys(s for s, _ in values)):
        parents[setting] = _parent(client, exp_id, setting, start=start + i)
    for i, ((setting, method), seeds) in enumerate(values.items()):
        for seed, value in enumerate(seeds):
            t = start + 100 + 10 * i + seed  # runs start in the spec's method order
            _child(client, exp_id, parents[setting], setting, method, seed, value, start=t)
    return parents


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = clocked_client(uri)
    exp_id = client.create_experiment("paper-table", artifact_location=(tmp / "artifacts").as_uri())
    _record(client, exp_id, OLD, start=1_000)
    parents = _record(client, exp_id, LATEST, start=2_000)
    latest_setting = next(reversed(parents))
    # ignored: a failed child, a child without the metric, an unfinished newer parent
    _child(client, exp_id, parents[latest_setting], latest_setting, "ours", 9, 99.0, fails=True)
    _child(client, exp_id, parents[latest_setting], latest_setting, "ours", 8, None)
    running = _parent(client, exp_id, latest_setting, finished=False, start=3_000)
    _child(client, exp_id, running, latest_setting, "ours", 0, 42.0, start=3_001)
    return uri, client, parents


def test_cells_are_mean_and_sample_std_of_the_latest_finished_runs(store):
    uri, _, _ = store
    report = build_report("paper-table", tracking_uri=uri)
    assert report.rows == ["ours", "missdiff", "ns_inpaint"]
    assert report.columns == ["navier_stokes pixel 20%", "navier_stokes pixel 60%"]
    for (setting, method), values in LATEST.items():
        cell = report.cells[method, setting]
        assert cell.n == len(values)
        assert cell.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
        if len(values) > 1:
            assert cell.std == pytest.approx(statistics.stdev(values), rel=1e-12)
        else:
            assert cell.std is None and "±" not in cell.text()


def test_all_runs_pools_earlier_parents(store):
    uri, _, _ = store
    cell = build_report("paper-table", tracking_uri=uri, runs="all").cells[
        "ours", "navier_stokes pixel 20%"
    ]
    pooled = OLD["navier_stokes pixel 20%", "ours"] + LATEST["navier_stokes pixel 20%", "ours"]
    assert cell.n == 6 and cell.mean == pytest.approx(statistics.fmean(pooled))


def test_markdown_bolds_the_lowest_mean_of_each_column(store):
    uri, _, _ = store
    md = build_report("paper-table", tracking_uri=uri).to_markdown()
    lines = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in md.splitlines()[4:]}
    assert lines["ours"][0].strip().startswith("**0.011 ± 0.001")  # best at 20 %
    assert lines["missdiff"][1].strip().startswith("**0.0035 ± 0.0005")  # best at 60 %
    assert "**" not in lines["ours"][1] and "**" not in lines["ns_inpaint"][0]
    assert lines["ns_inpaint"][0].strip() == "0.05 (n=1)"


def test_csv_parses_to_the_stored_values(store):
    uri, _, _ = store
    rows = list(csv.DictReader(io.StringIO(build_report("paper-table", tracking_uri=uri).to_csv())))
    assert len(rows) == len(LATEST)
    for row in rows:
        values = LATEST[row["setting"], row["method"]]
        assert float(row["mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert int(row["n"]) == len(values) and len(row["run_ids"].split(";")) == len(values)
        assert row["std"] == ("" if len(values) == 1 else repr(statistics.stdev(values)))
    best = {(r["setting"], r["method"]) for r in rows if r["best"] == "1"}
    assert best == {("navier_stokes pixel 20%", "ours"), ("navier_stokes pixel 60%", "missdiff")}


def test_log_report_writes_table_csv_and_figure_to_the_latest_parent(store):
    uri, client, parents = store
    report = build_report("paper-table", tracking_uri=uri)
    assert isinstance(report.figure(), Figure)
    run_id = log_report(report, uri)
    assert run_id == parents["navier_stokes pixel 60%"]  # the latest finished parent
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.md", "report.csv"} <= names
    # the bars of the table, and per setting each test metric per method (no test sample was
    # logged by these runs: no sample comparison)
    assert sorted(a.path for a in client.list_artifacts(run_id, "figures")) == [
        "figures/report_test_metrics_navier_stokes_pixel_20_.png",
        "figures/report_test_metrics_navier_stokes_pixel_60_.png",
        "figures/report_test_mse.png",
    ]


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    report_cli.add_parser(parser.add_subparsers(dest="command"))
    return report_cli.run(parser.parse_args(["report", *argv]))


def test_cli_prints_the_table_and_writes_files(store, tmp_path, capsys):
    uri, _, _ = store
    assert _cli("paper-table", "--tracking-uri", uri, "--out", str(tmp_path), "--no-log") == 0
    out = capsys.readouterr().out
    assert "| ours | **0.011 ± 0.001 (n=3)** | 0.005 ± 0.001 (n=3) |" in out
    assert {p.name for p in tmp_path.iterdir()} == {"report.md", "report.csv", "report.png"}


def test_cli_names_a_missing_experiment(store, capsys):
    uri, _, _ = store
    assert _cli("no-such", "--tracking-uri", uri) == 2
    err = capsys.readouterr().err
    assert "no MLflow experiment 'no-such'" in err and "paper-table" in err
