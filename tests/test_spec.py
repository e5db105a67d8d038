"""Experiment specs: every file in experiments/ validates; bad input gets named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from incdyn.platform.experiment.run import dry_run
from incdyn.platform.spec import SpecError, apply_overrides, load_spec, parse_spec, variants_of

SPECS = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "experiments").rglob("*.yaml")
    if p.name != "claims.yaml"  # a claims file (platform/report/claims/), not a spec
)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_spec_validates_and_dry_runs(path):
    spec = load_spec(path)
    text = dry_run(spec)
    assert spec.name in text and "store" in text
    for profile in spec.profiles:  # every named profile (e.g. smoke) resolves too
        small = load_spec(path, [f"profile={profile}"])
        assert small.profile == profile
        assert dry_run(small)


def test_paper_tables_each_have_a_spec_with_a_smoke_profile():
    paper = {p.stem for p in SPECS if p.parent.name == "paper"}
    assert {"table1", "table2", "table4", "table5", "table6", "table7", "table8"} <= paper
    for name in paper:
        spec = load_spec(
            Path(__file__).resolve().parents[1] / "experiments" / "paper" / f"{name}.yaml",
            ["profile=smoke"],
        )
        for variant in variants_of(spec):
            assert variant.training.steps <= 50 and variant.data.n_train <= 64
            assert (
                not variant.ray.use_gpu and variant.data.source != "era5"
            )  # runs on 2 CPU cores offline


def test_settings_become_variants_with_their_own_store_and_shared_experiment():
    spec = parse_spec(
        _minimal(
            settings=[
                {"name": "p80", "overrides": {"data.observation.p": 0.8}},
                {"name": "p20", "overrides": {"data.observation.p": 0.2}},
            ]
        )
    )
    a, b = variants_of(spec)
    assert (a.data.observation.p, b.data.observation.p) == (0.8, 0.2)
    assert a.store_url != b.store_url and a.experiment_name == b.experiment_name == "t"
    assert a.setting != b.setting


def _minimal(**extra) -> dict:
    return {"name": "t", "methods": [{"name": "ours"}], **extra}


def test_unknown_key_names_field_and_allowed_keys():
    with pytest.raises(SpecError, match=r"training\.stepz: unknown key; allowed keys here: steps"):
        parse_spec(_minimal(training={"stepz": 3}))


def test_bad_values_name_the_field():
    with pytest.raises(SpecError, match=r"data\.observation\.p"):
        parse_spec(_minimal(data={"observation": {"p": 1.5}}))
    with pytest.raises(SpecError, match=r"methods\.0\.kind: kind must be one of"):
        parse_spec({"name": "t", "methods": [{"name": "x", "kind": "magic"}]})
    with pytest.raises(SpecError, match="unique"):
        parse_spec({"name": "t", "methods": [{"name": "x"}, {"name": "x"}]})
    with pytest.raises(SpecError, match="block partition needs block observation masks"):
        parse_spec({"name": "t", "methods": [{"name": "x", "partition": {"kind": "block"}}]})
    with pytest.raises(SpecError, match="cloud partition needs cloud observation masks"):
        parse_spec({"name": "t", "methods": [{"name": "x", "partition": {"kind": "cloud"}}]})


def test_overrides_by_path_and_by_method_name():
    raw = apply_overrides(
        _minimal(), ["training.steps=7", "methods.ours.ensemble=3", "data.observation.p=0.5"]
    )
    spec = parse_spec(raw)
    assert (
        spec.training.steps == 7
        and spec.methods[0].ensemble == 3
        and spec.data.observation.p == 0.5
    )
    with pytest.raises(SpecError, match="no list item"):
        apply_overrides(_minimal(), ["methods.theirs.ensemble=3"])
    with pytest.raises(SpecError, match=r"key\.path=value"):
        apply_overrides(_minimal(), ["training.steps"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
