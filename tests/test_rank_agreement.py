"""Rank agreement of the methods' held-out and truth scores (Spearman's ρ): known values on
made-up rows, and the line under ``incdyn report``'s table from an MLflow store."""

from __future__ import annotations

import argparse

import pytest
from conftest import clocked_client, tiny_spec

from incdyn.platform.report import cli as report_cli
from incdyn.platform.report.rank_agreement import agreement_metrics, rank_agreement
from incdyn.platform.report.tables import build_report
from incdyn.platform.spec import parse_spec
from incdyn.platform.tracking import (
    ROLE_EXPERIMENT,
    ROLE_METHOD,
    log_evaluation,
    start_child,
    start_parent,
)


def _rows(heldout: list[float], truth: list[float]) -> list[dict]:
    return [
        {"method": f"m{i}", "test_heldout_mse": h, "test_mse": t}
        for i, (h, t) in enumerate(zip(heldout, truth, strict=True))
    ]


def test_same_order_is_one_reversed_is_minus_one_and_one_swap_is_known():
    assert rank_agreement(_rows([1, 2, 3, 4], [10, 20, 30, 40])).rho == pytest.approx(1.0)
    assert rank_agreement(_rows([1, 2, 3, 4], [40, 30, 20, 10])).rho == pytest.approx(-1.0)
    # one adjacent swap of 4: 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60 = 0.8
    swapped = rank_agreement(_rows([1, 2, 3, 4], [1, 3, 2, 4]))
    assert swapped.rho == pytest.approx(0.8) and swapped.methods == 4
    assert swapped.text() == "held-out vs truth rank agreement (Spearman, 4 methods): 0.80"


def test_scores_are_means_over_seeds_and_oracles_and_missing_scores_stay_out():
    rows = _rows([1, 2, 3], [1, 2, 3])
    rows += [{"method": "m0", "test_heldout_mse": 5.0, "test_mse": 1.0}]  # m0's mean: 3, 1
    rows += [{"method": "oracle", "test_heldout_mse": 0.0, "test_mse": 9.0}]
    rows += [{"method": "no_truth", "test_heldout_mse": 0.5}]
    agreement = rank_agreement(rows, exclude={"oracle"})
    assert agreement.methods == 3
    assert agreement.rho == pytest.approx(0.0)  # ranks (2.5, 1, 2.5) vs (1, 2, 3): no agreement
    assert rank_agreement(_rows([1, 2], [1, 2])) is None  # fewer than 3 methods
    assert rank_agreement(_rows([1, 1, 1], [1, 2, 3])) is None  # held-out scores all tied
    val = [{"method": f"m{i}", "val_heldout_mse": i, "val_mse": -i} for i in range(3)]
    assert agreement_metrics(_rows([1, 2, 3], [1, 2, 3]) + val) == {
        "spearman_heldout_truth": pytest.approx(1.0),
        "spearman_val_heldout_truth": pytest.approx(-1.0),
    }


METHODS = [
    {"name": "ours"},
    {"name": "missdiff", "partition": {"context_ratio": 1.0, "query_ratio": 1.0}},
    {"name": "ns_inpaint", "kind": "inpaint_ns"},
    {"name": "oracle", "training_data": "complete"},
]
# method -> (test_heldout_mse, test_mse); the oracle's held-out score would break the agreement
SCORES = {
    "ours": (0.1, 0.01),
    "missdiff": (0.3, 0.02),
    "ns_inpaint": (0.2, 0.05),
    "oracle": (0.9, 0.001),
}


def test_report_prints_the_rank_agreement_of_each_setting(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = clocked_client(uri)
    exp_id = client.create_experiment("agree", artifact_location=(tmp_path / "a").as_uri())
    spec = parse_spec(tiny_spec(name="agree", store="memory://agree", methods=METHODS))
    parent = start_parent(client, exp_id, spec, role=ROLE_EXPERIMENT, run_name=spec.name)
    client.set_terminated(parent, "FINISHED")
    for i, (method, (heldout, truth)) in enumerate(SCORES.items()):
        client.now = 10 + i
        run_id = start_child(
            client, exp_id, parent, spec, spec.method(method), role=ROLE_METHOD, run_name=method
        )
        log_evaluation(client, run_id, {"test_mse": truth, "test_heldout_mse": heldout})
        client.set_terminated(run_id, "FINISHED")
    report = build_report("agree", tracking_uri=uri)
    # held-out ranks ours 1, ns_inpaint 2, missdiff 3; truth ours 1, missdiff 2, ns_inpaint 3:
    # 1 − 6·(0 + 1 + 1)/(3·8) = 0.5 (with the oracle it would be lower)
    assert report.agreement[spec.setting].rho == pytest.approx(0.5)
    parser = argparse.ArgumentParser()
    report_cli.add_parser(parser.add_subparsers(dest="command"))
    assert (
        report_cli.run(parser.parse_args(["report", "agree", "--tracking-uri", uri, "--no-log"]))
        == 0
    )
    line = f"{spec.setting}: held-out vs truth rank agreement (Spearman, 3 methods): 0.50"
    assert line in capsys.readouterr().out.splitlines()
