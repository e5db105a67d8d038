"""`incdyn report --claims`: the paper's claims judged from run records (MLflow's, or the CSV
exported from it, byte for byte), rows chosen on truth-free validation figures only, and the
repro set's own files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from conftest import clocked_client, tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.platform.report import cli as report_cli
from incdyn.platform.report.claims import check_claims, claims_markdown, load_claims
from incdyn.platform.report.claims.pilots import pilot_choices
from incdyn.platform.report.claims.schema import SelectSpec, truth_free
from incdyn.platform.report.records import mlflow_records, read_records, write_records
from incdyn.platform.spec import ExperimentSpec, parse_spec
from incdyn.platform.tracking import (
    ROLE_EXPERIMENT,
    ROLE_METHOD,
    TAG_ROLE,
    log_evaluation,
    run_scope,
    start_child,
    start_parent,
)

REPO = Path(__file__).resolve().parents[1]
REPRO = REPO / "experiments" / "repro_cpu"
SETTING = "navier_stokes pixel 20%"

# method → (test_mse, val_heldout_mse) per seed 0, 1, 2; val_mse (truth) ranks the ratios the
# other way round, so a selection that read it would pick r0.5
RUNS = {
    "ours": ([0.10, 0.12, 0.11], [0.30, 0.31, 0.29]),
    "r0.5": ([0.09, 0.10, 0.08], [0.40, 0.41, 0.39]),  # best on test, not on val
    "missdiff": ([0.20, 0.11, 0.22], [0.50, 0.52, 0.51]),  # seed 1 beats ours (0.11 < 0.12)
    "ns_inpaint": ([0.15, 0.16, 0.14], [None, None, None]),
}

CLAIMS = {
    "title": "test claims",
    "experiment": "claims-test",
    "command": "bash infra/dev.sh repro",
    "specs": ["a.yaml"],
    "claims": [
        {
            "id": 1,
            "title": "ours beats missdiff",
            "statement": "ours < missdiff",
            "parts": [
                {
                    "setting": SETTING,
                    "rows": {"ours": 1.931, "missdiff": 3.077, "ns_inpaint": 2.989},
                    "holds_if": ["ours < missdiff", "ours < ns_inpaint"],
                    "informational": ["missdiff < ns_inpaint"],
                    "ratio": {
                        "label": "ours/MissDiff",
                        "num": "ours",
                        "den": "missdiff",
                        "paper": 0.63,
                    },
                }
            ],
        },
        {
            "id": 2,
            "title": "inpainting beats ours (false)",
            "statement": "ns_inpaint < ours",
            "parts": [
                {
                    "setting": SETTING,
                    "rows": {"ours": None, "ns_inpaint": None},
                    "holds_if": ["ns_inpaint < ours"],
                    "ratio": {
                        "label": "inpaint/ours",
                        "num": "ns_inpaint",
                        "den": "ours",
                        "paper": 0.5,
                    },
                }
            ],
        },
        {
            "id": 4,
            "title": "best ratio chosen on val",
            "statement": "best < (1, 1)",
            "parts": [
                {
                    "setting": SETTING,
                    "rows": {"r0.5": None, "ours": 2.03, "missdiff": 2.56},
                    "select": {"name": "best", "among": ["r0.5", "ours"]},
                    "holds_if": ["best < missdiff"],
                    "ratio": {
                        "label": "best/(1,1)",
                        "num": "best",
                        "den": "missdiff",
                        "paper": 0.79,
                    },
                }
            ],
        },
        {
            "id": 5,
            "title": "a setting never run",
            "statement": "no runs",
            "parts": [
                {
                    "setting": "advection block 5/9",
                    "rows": {"ours": None, "missdiff": None},
                    "holds_if": ["ours < missdiff"],
                    "ratio": {"label": "x", "num": "ours", "den": "missdiff", "paper": 1.0},
                }
            ],
        },
    ],
}


METHODS = [
    {"name": "ours"},
    {"name": "r0.5", "partition": {"context_ratio": 0.5, "query_ratio": 0.5}},
    {"name": "missdiff", "partition": {"context_ratio": 1.0, "query_ratio": 1.0}},
    {"name": "ns_inpaint", "kind": "inpaint_ns"},
]


def _spec(*, seed: int = 0) -> ExperimentSpec:
    spec = parse_spec(tiny_spec(name="s", store="memory://s", p=0.2, methods=METHODS, seed=seed))
    assert spec.setting == SETTING
    return spec


def _method_run(
    client, exp: str, parent: str, method: str, seed: int, metrics: dict, spec=None
) -> None:
    """A method's child run from 2 s to 3 s, recorded as ``incdyn run`` records it."""
    client.now = 2_000
    spec = (spec or _spec()).model_copy(update={"seed": seed})
    run = start_child(
        client, exp, parent, spec, spec.method(method), role=ROLE_METHOD, run_name=method
    )
    with run_scope(client, run):
        log_evaluation(client, run, metrics)
        client.now = 3_000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One parent run from 1 s to 181 s over the child runs of ``RUNS``."""
    root = tmp_path_factory.mktemp("claims")
    uri = f"sqlite:///{root}/mlflow.db"
    client = clocked_client(uri)
    exp = client.create_experiment("claims-test")
    client.now = 1_000
    parent = start_parent(client, exp, _spec(), role=ROLE_EXPERIMENT, run_name="s")
    with run_scope(client, parent):
        for method, (tests, vals) in RUNS.items():
            for seed, (t, v) in enumerate(zip(tests, vals, strict=True)):
                metrics = {"test_mse": t}
                if v is not None:  # truth ranks r0.5 first: the selection must not read it
                    metrics |= {"val_heldout_mse": v, "val_mse": 1.0 - v}
                _method_run(client, exp, parent, method, seed, metrics)
        client.now = 181_000
    path = root / "claims.yaml"
    path.write_text(yaml.safe_dump(CLAIMS, sort_keys=False))
    return uri, path


def _check(uri: str, path: Path):
    return check_claims(load_claims(path), mlflow_records("claims-test", MlflowClient(uri)))


def test_verdicts_ratios_and_seed_counts_follow_the_runs(store):
    uri, path = store
    result = _check(uri, path)
    (one,) = result.parts[1]
    assert one.holds
    assert one.ratio == pytest.approx((0.11 / 1) / (0.53 / 3))  # mean(ours) / mean(missdiff)
    assert one.seeds_holding == (2, 3)  # seed 1: ours 0.12 > missdiff 0.11
    assert one.ratio_by_seed["1"] == pytest.approx(0.12 / 0.11)
    assert one.versus_paper == "stronger"  # 0.62 below the paper's 0.63
    (info,) = one.informational
    assert not info.holds  # missdiff 0.177 > inpainting 0.15: shown, not judged
    (two,) = result.parts[2]
    assert not two.holds and two.seeds_holding == (0, 3)
    assert two.ratio > 1 and two.versus_paper == "reversed"  # the wrong side of 1: not "weaker"
    (five,) = result.parts[5]
    assert not five.holds and five.missing == ["ours", "missdiff"]
    assert result.seeds == ["0", "1", "2"]


def test_selected_row_is_the_lowest_validation_mean_not_the_lowest_test_mean(store):
    uri, path = store
    (four,) = _check(uri, path).parts[4]
    assert four.selected == "ours"  # r0.5 has the lower test mean but the higher val mean
    assert four.selection == pytest.approx({"r0.5": 0.40, "ours": 0.30})
    assert four.cells["best"].values == four.cells["ours"].values
    assert four.holds and four.ratio == pytest.approx(0.11 / (0.53 / 3))


def test_markdown_carries_tables_paper_numbers_verdicts_and_provenance(store):
    uri, path = store
    text = claims_markdown(_check(uri, path))
    assert text.startswith("# test claims")
    assert "`bash infra/dev.sh repro`" in text and "Seeds: 0, 1, 2" in text
    assert "torch " in text and "ray " in text and "mlflow " in text  # the runs' versions
    assert "CPU cores" in text  # the runs' machine, from the parent's tags
    assert "3.0 min" in text  # parent run: 1 s to 181 s
    assert "| ours | 0.11 ± 0.01 (n=3) | 0: 0.1, 1: 0.12, 2: 0.11 | 1.931 |" in text
    assert "**holds**" in text and "**does not hold**" in text
    assert "ours ← chosen on val_heldout_mse" in text
    assert "against the paper's 0.63: stronger" in text
    assert "against the paper's 0.5: reversed" in text  # inpaint/ours = 1.36, above 1
    # the budget and the held-out share, read from the runs' params; the metric's units
    steps = _spec().training.steps
    assert f"| `test_mse` | {steps} | ours/MissDiff |" in text
    assert f"Measured at {steps} training steps of batch {_spec().training.batch_size}" in text
    assert "10 % of the observed points of each validation and test sample" in text
    assert "`test_mse` is normalised" in text and "test_feasibility" not in text
    for word in ("as good", "success", "meets", "short of"):
        assert word not in text
    assert "✗ `missdiff < ns_inpaint`" in text and "(shown, not judged)" in text
    assert "cannot be judged" in text  # claim 5


def test_repro_results_name_the_feasibility_units_and_the_block_masks_held_out_share():
    text = (REPRO / "RESULTS.md").read_text()
    assert "`test_feasibility` is in physical units, not normalised" in text
    assert "1 of the 8 observed tiles of each validation and test sample (12.5 %)" in text
    assert "1 of the 5 observed tiles of each validation and test sample (20 %)" in text
    assert "block/pixel = 1.12 against the paper's 0.875: reversed" in text
    assert "Measured at 300 training steps of batch 8" in text


def test_claims_file_errors_name_the_problem(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(CLAIMS))
    bad["claims"][0]["parts"][0]["holds_if"] = ["ours < nobody"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"'ours < nobody'.*\['nobody'\] not in"):
        load_claims(path)
    bad["claims"][0]["parts"][0]["holds_if"] = ["ours beats missdiff"]
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="must read 'a < b'"):
        load_claims(path)
    bad["claims"][0]["colour"] = "red"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"claims\.0\.colour: Extra inputs"):
        load_claims(path)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    report_cli.add_parser(parser.add_subparsers(dest="command"))
    return report_cli.run(parser.parse_args(["report", *argv]))


def test_cli_writes_results_and_runs_csv_and_rebuilds_it_byte_for_byte(store, tmp_path, capsys):
    uri, path = store
    out = tmp_path / "RESULTS.md"
    assert _cli("--claims", str(path), "--tracking-uri", uri, "--out", str(out)) == 0
    text = out.read_text()
    assert text.startswith("# test claims") and "`RESULTS_runs.csv`" in text
    records = read_records(tmp_path / "RESULTS_runs.csv")
    assert len(records) == 1 + 3 * len(RUNS)  # the parent and every method run it counted
    run = next(r for r in records if r.method == "ours" and r.seed == "1")
    assert run.metrics["test_mse"] == 0.12 and run.params["method.partition.context_ratio"]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("claims-test")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_EXPERIMENT}'")
    assert {"claims/RESULTS.md", "claims/RESULTS_runs.csv"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, "claims")
    }
    out.write_text("stale")
    nowhere = f"sqlite:///{tmp_path}/absent.db"  # the rebuild reads no MLflow store
    assert (
        _cli("--claims", str(path), "--out", str(out), "--from-csv", "--tracking-uri", nowhere) == 0
    )
    assert out.read_text() == text
    assert _cli("some-experiment", "--claims", str(path), "--tracking-uri", uri) == 2
    assert "not both" in capsys.readouterr().err


def test_records_survive_the_csv_exactly(store, tmp_path):
    uri, _ = store
    records = mlflow_records("claims-test", MlflowClient(uri))
    write_records(records, tmp_path / "runs.csv")
    assert read_records(tmp_path / "runs.csv") == records


# -- rows are chosen on truth-free validation figures only --------------------------------------


def test_selection_refuses_truth_and_test_metrics_unless_truth_is_asked_for():
    assert SelectSpec(name="b", among=["x"]).by == "val_heldout_mse"
    for metric in ("val_mse", "val_mse_unobserved", "val_crps"):
        with pytest.raises(ValueError, match="reads validation truth"):
            SelectSpec(name="b", among=["x"], by=metric)
    assert SelectSpec(name="b", among=["x"], by="val_mse", allow_truth=True).by == "val_mse"
    for metric in ("test_mse", "test_heldout_mse", "test_feasibility"):
        with pytest.raises(ValueError, match="validation split only"):
            SelectSpec(name="b", among=["x"], by=metric, allow_truth=True)
    assert truth_free("val_heldout_mse_single") and not truth_free("val_mse_single")


def test_a_followed_row_goes_with_the_choice_and_a_reference_row_is_never_judged(store):
    uri, path = store
    claims = yaml.safe_load(path.read_text())
    part = claims["claims"][2]["parts"][0]  # claim 4: best of r0.5 and ours by val_heldout_mse
    part["rows"]["ns_inpaint"] = None
    part["select"]["follow"] = {"twin": ["ns_inpaint", "missdiff"]}  # ours chosen → missdiff
    part["holds_if"] = ["best < twin"]
    part["rows"]["ns_inpaint"] = None
    claims["claims"][0]["parts"][0]["reference"] = {"ns_inpaint": "a reference"}
    claims["claims"][0]["parts"][0]["holds_if"] = ["ours < missdiff"]
    claims["claims"][0]["parts"][0]["informational"] = []
    edited = path.with_name("follow.yaml")
    edited.write_text(yaml.safe_dump(claims))
    result = _check(uri, edited)
    (four,) = result.parts[4]
    assert four.cells["twin"].values == four.cells["missdiff"].values
    (one,) = result.parts[1]
    assert [c.text for c in one.comparisons] == ["ours < missdiff"]
    text = claims_markdown(result)
    assert "ns_inpaint (a reference)" in text and "reference `ns_inpaint`" in text
    claims["claims"][0]["parts"][0]["holds_if"] = ["ns_inpaint < missdiff"]
    edited.write_text(yaml.safe_dump(claims))
    with pytest.raises(ValueError, match="reference row is never judged"):
        load_claims(edited)


def test_pilots_pick_the_lowest_truth_free_mean_and_refuse_truth(tmp_path):
    uri = f"sqlite:///{tmp_path}/pilots.db"
    client = clocked_client(uri)
    exp = client.create_experiment("pilots")
    # lr 0.04 has the lower held-out figure, lr 0.01 the lower truth figure
    for i, (lr, held, truth) in enumerate([(0.01, 0.5, 0.1), (0.04, 0.3, 0.2)]):
        spec = parse_spec(
            tiny_spec(name="s", store="memory://s", p=0.2, methods=METHODS[:1], training={"lr": lr})
        )
        client.now = 1_000 * (i + 1)
        parent = start_parent(client, exp, spec, role=ROLE_EXPERIMENT, run_name="s")
        with run_scope(client, parent):
            metrics = {"val_heldout_mse": held, "val_mse": truth}
            _method_run(client, exp, parent, "ours", 100, metrics, spec)
    records = mlflow_records("pilots", MlflowClient(uri))
    (choice,) = pilot_choices(records, "training.lr", spec="s", method="ours")
    assert choice.chosen == ("ours", "0.04") and choice.candidates["ours", "0.01"] == (0.5, 1)
    with pytest.raises(ValueError, match="reads validation truth"):
        pilot_choices(records, "training.lr", "val_mse")
    (truth,) = pilot_choices(records, "training.lr", "val_mse", allow_truth=True)
    assert truth.chosen == ("ours", "0.01")
    with pytest.raises(ValueError, match="validation split only"):
        pilot_choices(records, "training.lr", "test_mse", allow_truth=True)
    # a pilot of two methods (the block partition's two queries): the best (method, value)
    spec = parse_spec(
        tiny_spec(name="s", store="memory://s", p=0.2, methods=METHODS[:2], training={"lr": 0.01})
    )
    client.now = 5_000
    parent = start_parent(client, exp, spec, role=ROLE_EXPERIMENT, run_name="s")
    with run_scope(client, parent):
        _method_run(client, exp, parent, "r0.5", 100, {"val_heldout_mse": 0.2}, spec)
    (both,) = pilot_choices(mlflow_records("pilots", MlflowClient(uri)), "training.lr", spec="s")
    assert both.chosen == ("r0.5", "0.01") and len(both.candidates) == 3
