"""The repro set's own files (experiments/repro_cpu): nothing chosen on truth or test, every
claim row a method of a repro setting, seeds that draw their own data, shared trainings, and a
committed RESULTS.md that its committed CSVs rebuild."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from incdyn.platform.report import cli as report_cli
from incdyn.platform.report.claims import load_claims
from incdyn.platform.spec import DiffusionMethod, load_spec, variants_of
from incdyn.platform.train.driver import run_name

REPRO = Path(__file__).resolve().parents[1] / "experiments" / "repro_cpu"


def _repro_specs():
    return [load_spec(p) for p in sorted(REPRO.glob("*.yaml")) if p.name != "claims.yaml"]


def test_no_repro_row_or_setting_is_chosen_on_truth_or_test():
    claims = load_claims(REPRO / "claims.yaml")
    for claim in claims.claims:
        for part in claim.parts:
            if part.select:
                assert part.select.by == "val_heldout_mse" and not part.select.allow_truth
    assert claims.pilots is not None and claims.pilots.by == "val_heldout_mse"
    pilots = 0
    for path in sorted(REPRO.glob("*.yaml")):
        if path.name == "claims.yaml":
            continue
        spec = load_spec(path)  # the best-sampler choice of the diffusion baselines, too
        assert spec.evaluation.holdout is not None, spec.name
        assert spec.evaluation.criterion == "val_heldout_mse", spec.name
        if "pilot" in spec.profiles:
            pilot = load_spec(path, ["profile=pilot"])
            assert pilot.evaluation.criterion == "val_heldout_mse"
            assert pilot.experiment_name == claims.pilots.experiment
            assert set(pilot.run_seeds).isdisjoint(spec.run_seeds)  # its own data set
            pilots += 1
    assert pilots == 4


def test_every_claim_row_is_a_method_of_a_repro_setting():
    claims = load_claims(REPRO / "claims.yaml")
    offered = {
        (v.setting, m.name) for spec in _repro_specs() for v in variants_of(spec) for m in v.methods
    }
    assert {v.experiment_name for s in _repro_specs() for v in variants_of(s)} == {
        claims.experiment
    }
    for claim in claims.claims:
        for part in claim.parts:
            for row in part.rows:
                assert (part.setting, row) in offered, (claim.id, part.setting, row)
    listed = {Path(s).name for s in claims.specs}
    assert listed == {p.name for p in REPRO.glob("*.yaml")} - {"claims.yaml"}


def test_repro_seeds_draw_their_own_data_and_trainings_are_shared_only_at_inference():
    specs = {s.name: s for s in _repro_specs()}
    for spec in specs.values():
        assert len(spec.run_seeds) >= 3 and spec.data.per_seed, spec.name
        urls = {spec.model_copy(update={"seed": s}).store_url for s in spec.run_seeds}
        assert len(urls) == len(spec.run_seeds), spec.name
    pixel = specs["repro-pixel-ns-baselines"]
    diffusion = [m for m in pixel.methods if isinstance(m, DiffusionMethod)]
    names = {m.name: run_name(pixel, m) for m in diffusion}
    assert names["r1.0"] == names["missdiff"]  # Table 6's (1, 1) is MissDiff's model
    assert len(set(names.values())) == len(names) - 1
    ours = specs["repro-pixel-ns"]  # the same setting, data sets and training as its baselines
    assert variants_of(ours)[0].setting == variants_of(pixel)[0].setting
    for field in ("seed", "data", "backbone", "schedule", "training", "evaluation"):
        assert getattr(ours, field) == getattr(pixel, field), field
    oracle = specs["repro-oracle-ns"]
    assert [m.training_data for m in oracle.methods] == ["complete"]
    for field in ("seed", "backbone", "schedule", "training", "evaluation"):
        assert getattr(oracle, field) == getattr(ours, field), field
    assert oracle.data.model_copy(update={"store": ours.data.store}) == ours.data
    sw = specs["repro-ensemble-sw"]
    for r in ("0.5", "0.7", "0.9"):
        assert run_name(sw, sw.method(f"direct_r{r}")) == run_name(sw, sw.method(f"ens_r{r}"))


def test_committed_results_rebuild_byte_for_byte_from_their_csvs(tmp_path):
    """RESULTS.md is what ``incdyn report --claims --from-csv`` makes of the committed CSVs
    (no MLflow store), and every choice it states was made on held-out validation points."""
    for name in ("RESULTS_runs.csv", "RESULTS_pilot_runs.csv"):
        shutil.copy(REPRO / name, tmp_path / name)
    out = tmp_path / "RESULTS.md"
    parser = argparse.ArgumentParser()
    report_cli.add_parser(parser.add_subparsers(dest="command"))
    nowhere = f"sqlite:///{tmp_path}/absent.db"
    argv = ["report", "--claims", str(REPRO / "claims.yaml"), "--out", str(out), "--from-csv"]
    assert report_cli.run(parser.parse_args([*argv, "--tracking-uri", nowhere])) == 0
    committed = (REPRO / "RESULTS.md").read_text()
    assert out.read_text() == committed
    assert "chosen on val_heldout_mse" in committed and "chosen on val_mse" not in committed
