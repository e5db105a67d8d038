"""A spec's data.params are the source's typed config: a misspelt key or a bad value is refused
by parse_spec (and so by ``incdyn run --dry-run``) with its field path; the preset's values lie
under the given params, and the spec keeps only what it was given."""

from __future__ import annotations

import json

import pytest

from incdyn.datasets.generators import GENERATORS, make_config
from incdyn.platform.cli import main
from incdyn.platform.spec import (
    DATA_SOURCES,
    SpecError,
    apply_overrides,
    parse_spec,
    variants_of,
)

# a bad value of each source, and the field its error names
BAD_VALUES = {
    "navier_stokes": ({"grid": 33}, "grid: Value error, expected an even number"),
    "shallow_water": ({"bumps": 0}, "bumps: Input should be greater than or equal to 1"),
    "advection": ({"speed_range": [2.0, 1.0]}, "speed_range: Value error, expected a pair"),
    "navier_stokes_public": ({"frames": 0}, "frames: Input should be greater than or equal to 1"),
    "era5": ({"stride": 2}, "stride: Value error, expected stride >= frames=3"),
    "xarray": ({"gaps": "some"}, "gaps: Input should be 'benchmark' or 'real'"),
}


def _spec(**data) -> dict:
    return {"name": "t", "data": data, "methods": [{"name": "telea", "kind": "telea"}]}


@pytest.mark.parametrize("source", sorted(DATA_SOURCES))
def test_a_misspelt_parameter_is_refused_with_the_allowed_keys(source):
    allowed = ", ".join(GENERATORS[source].config_cls.model_fields)
    with pytest.raises(SpecError) as error:
        parse_spec(_spec(source=source, params={"fraems": 4}))
    assert f"data.params.fraems: unknown key; allowed keys here: {allowed}" in str(error.value)


@pytest.mark.parametrize("source", sorted(BAD_VALUES))
def test_a_bad_value_is_refused_naming_the_field(source):
    params, message = BAD_VALUES[source]
    with pytest.raises(SpecError, match=f"data\\.params\\.{message}"):
        parse_spec(_spec(source=source, params=params))


def test_a_rule_across_fields_is_checked_against_the_preset():
    # grid 8 alone is fine, but the quickstart preset's k0 = 3 is not below grid/3
    with pytest.raises(SpecError, match=r"data\.params\.peak_wavenumber: .* grid/3 = 2\.667"):
        parse_spec(_spec(params={"grid": 8}))
    with pytest.raises(SpecError, match=r"data\.preset: Input should be 'paper' or 'small'"):
        parse_spec(_spec(source="shallow_water", preset="quickstart"))


def test_params_lie_over_the_preset_and_the_dump_keeps_only_the_given_keys():
    spec = parse_spec(_spec(source="shallow_water", preset="paper", params={"frames": 4}))
    assert spec.data.params == make_config("shallow_water", "paper", {"frames": 4})
    assert spec.data.params.grid == 64 and spec.to_dict()["data"]["params"] == {"frames": 4}
    again = parse_spec(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.to_dict() == spec.to_dict()
    # a setting that changes the preset keeps the given keys, over the new preset
    raw = _spec(params={"frames": 4}, preset="quickstart")
    raw["settings"] = [{"name": "paper", "overrides": {"data.preset": "paper"}}]
    (variant,) = variants_of(parse_spec(raw))
    assert (variant.data.params.grid, variant.data.params.frames) == (64, 4)


def test_set_overrides_a_data_parameter():
    raw = apply_overrides(_spec(), ["data.params.grid=16", "data.params.frames=4"])
    assert parse_spec(raw).data.params.model_dump(include={"grid", "frames"}) == {
        "grid": 16,
        "frames": 4,
    }
    with pytest.raises(SpecError, match=r"data\.params\.gird: unknown key"):
        parse_spec(apply_overrides(_spec(), ["data.params.gird=16"]))


def test_an_older_spec_json_reads_the_same():
    # as earlier versions saved it (checkpoints, MLflow): params as given, mappings and all
    old = _spec(
        source="xarray",
        preset="default",
        params={
            "url": "x.nc",
            "variables": ["sst"],
            "dims": {"time": "t", "y": "lat", "x": "lon"},
            "split": {"train": ["2000", "2001"], "val": ["2002", "2002"], "test": [2003, 2003]},
        },
    )
    params = parse_spec(old).data.params
    assert params.dims == ("t", "lat", "lon") and params.split[2] == ("2003", "2003")
    assert parse_spec(parse_spec(old).to_dict()).data.params == params


def test_dry_run_refuses_a_misspelt_data_parameter(tmp_path, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text(
        "name: typo\ndata: {params: {gird: 16}}\nmethods: [{name: telea, kind: telea}]\n"
    )
    try:
        status = main(["run", str(path), "--dry-run"])
    except SystemExit as exit_:  # a user error may leave through SystemExit(2)
        status = exit_.code
    assert status not in (0, None)
    assert (
        "data.params.gird: unknown key; allowed keys here: grid, frames" in capsys.readouterr().err
    )
