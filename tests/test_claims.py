"""`incdyn report --claims`: the paper's claims judged from MLflow runs alone, and the repro set."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from conftest import clocked_client, tiny_spec
from mlflow.tracking import MlflowClient

from incdyn.platform.report import cli as report_cli
from incdyn.platform.report.claims import check_claims, claims_markdown, load_claims
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, load_spec, parse_spec
from incdyn.platform.tracking import (
    ROLE_EXPERIMENT,
    ROLE_METHOD,
    TAG_ROLE,
    log_evaluation,
    run_scope,
    start_child,
    start_parent,
)
from incdyn.platform.train.driver import run_name

REPO = Path(__file__).resolve().parents[1]
REPRO = REPO / "experiments" / "repro_cpu"
SETTING = "navier_stokes pixel 20%"

# method → (test_mse, val_mse) per seed 0, 1, 2
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
                    "select": {"name": "best", "among": ["r0.5", "ours"], "by": "val_mse"},
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


def _method_run(client, exp: str, parent: str, method: str, seed: int, metrics: dict) -> None:
    """A method's child run from 2 s to 3 s, recorded as ``incdyn run`` records it."""
    client.now = 2_000
    spec = _spec(seed=seed)
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
                metrics = {"test_mse": t} if v is None else {"test_mse": t, "val_mse": v}
                _method_run(client, exp, parent, method, seed, metrics)
        client.now = 181_000
    path = root / "claims.yaml"
    path.write_text(yaml.safe_dump(CLAIMS, sort_keys=False))
    return uri, path


def test_verdicts_ratios_and_seed_counts_follow_the_runs(store):
    uri, path = store
    result = check_claims(load_claims(path), uri)
    (one,) = result.parts[1]
    assert one.holds
    assert one.ratio == pytest.approx((0.11 / 1) / (0.53 / 3))  # mean(ours) / mean(missdiff)
    assert one.seeds_holding == (2, 3)  # seed 1: ours 0.12 > missdiff 0.11
    assert one.ratio_by_seed["1"] == pytest.approx(0.12 / 0.11)
    assert one.meets_paper_ratio  # 0.62 <= 0.63
    (info,) = one.informational
    assert not info.holds  # missdiff 0.177 > inpainting 0.15: shown, not judged
    (two,) = result.parts[2]
    assert not two.holds and two.seeds_holding == (0, 3)
    (five,) = result.parts[5]
    assert not five.holds and five.missing == ["ours", "missdiff"]
    assert result.seeds == ["0", "1", "2"]


def test_selected_row_is_the_lowest_validation_mean_not_the_lowest_test_mean(store):
    uri, path = store
    (four,) = check_claims(load_claims(path), uri).parts[4]
    assert four.selected == "ours"  # r0.5 has the lower test mean but the higher val mean
    assert four.selection == pytest.approx({"r0.5": 0.40, "ours": 0.30})
    assert four.cells["best"].values == four.cells["ours"].values
    assert four.holds and four.ratio == pytest.approx(0.11 / (0.53 / 3))


def test_markdown_carries_tables_paper_numbers_verdicts_and_provenance(store):
    uri, path = store
    text = claims_markdown(check_claims(load_claims(path), uri))
    assert text.startswith("# test claims")
    assert "`bash infra/dev.sh repro`" in text and "Seeds: 0, 1, 2" in text
    assert "torch " in text and "ray " in text and "mlflow " in text  # versions
    assert "3.0 min" in text  # parent run: 1 s to 181 s
    assert "| ours | 0.11 ± 0.01 (n=3) | 0: 0.1, 1: 0.12, 2: 0.11 | 1.931 |" in text
    assert "**holds**" in text and "**does not hold**" in text
    assert "ours ← chosen on val" in text
    assert "✗ `missdiff < ns_inpaint`" in text and "(shown, not judged)" in text
    assert "cannot be judged" in text  # claim 5


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


def test_cli_writes_results_file_and_logs_it(store, tmp_path, capsys):
    uri, path = store
    out = tmp_path / "RESULTS.md"
    assert _cli("--claims", str(path), "--tracking-uri", uri, "--out", str(out)) == 0
    assert out.read_text().startswith("# test claims")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("claims-test")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_EXPERIMENT}'")
    assert "claims/RESULTS.md" in [
        a.path for a in client.list_artifacts(parent.info.run_id, "claims")
    ]
    assert _cli("some-experiment", "--claims", str(path), "--tracking-uri", uri) == 2
    assert "not both" in capsys.readouterr().err


# -- the repro set itself (experiments/repro_cpu) -----------------------------------------------


def _repro_specs():
    return [load_spec(p) for p in sorted(REPRO.glob("*.yaml")) if p.name != "claims.yaml"]


def test_every_claim_row_is_a_method_of_a_repro_setting():
    claims = load_claims(REPRO / "claims.yaml")
    offered = {
        (v.setting, m.name) for spec in _repro_specs() for v in spec.variants() for m in v.methods
    }
    assert {v.experiment_name for s in _repro_specs() for v in s.variants()} == {claims.experiment}
    for claim in claims.claims:
        for part in claim.parts:
            for row in part.rows:
                assert (part.setting, row) in offered, (claim.id, part.setting, row)
    listed = {Path(s).name for s in claims.specs}
    assert listed == {p.name for p in REPRO.glob("*.yaml")} - {"claims.yaml"}


def test_repro_set_has_three_seeds_and_shares_trainings_that_differ_only_at_inference():
    specs = {s.name: s for s in _repro_specs()}
    assert all(len(s.run_seeds) >= 3 for s in specs.values())
    pixel = specs["repro-pixel-ns-baselines"]
    diffusion = [m for m in pixel.methods if isinstance(m, DiffusionMethod)]
    names = {m.name: run_name(pixel, m) for m in diffusion}
    assert names["r1.0"] == names["missdiff"]  # Table 6's (1, 1) is MissDiff's model
    assert len(set(names.values())) == len(names) - 1
    ours = specs["repro-pixel-ns"]  # the same setting, data set and training as its baselines
    assert ours.variants()[0].setting == pixel.variants()[0].setting
    for field in ("seed", "data", "backbone", "schedule", "training", "evaluation"):
        assert getattr(ours, field) == getattr(pixel, field), field
    sw = specs["repro-ensemble-sw"]
    assert run_name(sw, sw.method("ours_direct")) == run_name(sw, sw.method("ours_ensemble"))
