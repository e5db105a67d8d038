"""A mistake in what the user gave ends the command in one line, ``incdyn: error: FIELD: ...``,
exit status 2 and no traceback; ``--debug`` shows it. One test per class of mistake, each
failing before Ray starts (in process: no Ray, no subprocess)."""

from __future__ import annotations

import pickle
import socket
import warnings

import pytest
import yaml
from conftest import sea_surface_file, tiny_spec

from incdyn.datasets.errors import DataAssumption, UserError
from incdyn.platform.cli import main, user_error_of


def _own_data_spec(tmp_path, **params) -> str:
    """A spec of a user's netCDF file (tests/conftest.py), ``params`` changed."""
    url = sea_surface_file(tmp_path / "sst.nc", gaps=True)
    spec = tiny_spec(tmp=tmp_path, name="own", methods=[{"name": "telea", "kind": "telea"}])
    sizes = {k: params.pop(k) for k in ("n_train",) if k in params}
    base = {"url": url, "variables": ["sst"], "dims": {"time": "t", "y": "lat", "x": "lon"},
            "window": 4, "stride": 2, "split": [0.5, 0.25, 0.25], "gaps": "real"}  # fmt: skip
    spec["data"] = {**spec["data"], "source": "xarray", "preset": "default",
                    "params": {**base, **params}, "n_train": 8, **sizes}  # fmt: skip
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def _fails_in_one_line(capsys, argv: list[str], field: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"incdyn: error: {field}: "), err
    assert "Traceback" not in err
    return err


def test_an_unknown_spec_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmethods: [{name: a}]\ntraining: {lr: -1, wat: 2}\n")
    err = _fails_in_one_line(capsys, ["run", str(path)], "training.lr")
    assert "training.wat: unknown key; allowed keys here: steps" in err


def test_a_spec_that_does_not_exist(tmp_path, capsys):
    _fails_in_one_line(capsys, ["data", "generate", str(tmp_path / "nope.yaml")], "SPEC")


def test_a_data_file_that_does_not_exist(tmp_path, capsys):
    spec = _own_data_spec(tmp_path, url=str(tmp_path / "nope.nc"))
    err = _fails_in_one_line(capsys, ["data", "generate", spec], "data.params.url")
    assert "nope.nc does not exist" in err


def test_a_variable_the_file_does_not_have(tmp_path, capsys):
    spec = _own_data_spec(tmp_path, variables=["temperature"])
    err = _fails_in_one_line(capsys, ["run", spec], "data.params.variables")
    assert "no variable 'temperature' (it has sst)" in err


def test_a_dimension_the_file_does_not_have(tmp_path, capsys):
    spec = _own_data_spec(tmp_path, dims={"time": "time", "y": "lat", "x": "lon"})
    err = _fails_in_one_line(capsys, ["data", "generate", spec], "data.params.dims")
    assert "its dimensions: ['lat', 'lon', 't']" in err


def test_a_split_smaller_than_the_samples_asked_for(tmp_path, capsys):
    spec = _own_data_spec(tmp_path, n_train=500)
    err = _fails_in_one_line(capsys, ["run", spec], "data.n_train")
    assert "(lower the split sizes, or the stride)" in err
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow and Ray


@pytest.mark.parametrize(
    ("model", "words"),
    [("models:/quickstart-ours", "is not a model URI"), ("./nowhere", "not a checkpoint")],
)
def test_a_model_that_names_no_checkpoint(capsys, model, words):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: the port check passes
    err = _fails_in_one_line(capsys, ["serve", model, "--port", str(port)], "MODEL")
    assert words in err


def test_a_port_that_is_taken_or_no_port(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        err = _fails_in_one_line(capsys, ["serve", "x", "--port", str(port)], "--port")
    assert "in use" in err and "choose another --port" in err
    _fails_in_one_line(capsys, ["serve", "x", "--port", "70000"], "--port")


def test_debug_shows_the_traceback(tmp_path):
    spec = _own_data_spec(tmp_path, url=str(tmp_path / "nope.nc"))
    with pytest.raises(UserError, match=r"data\.params\.url"):
        main(["--debug", "data", "generate", spec])


def test_errors_from_ray_tasks_and_train_workers_are_unwrapped():
    from ray.exceptions import RayTaskError
    from ray.train.v2.api.exceptions import WorkerGroupError

    error = UserError("data.n_val", "too many samples", "lower it")
    copy = pickle.loads(pickle.dumps(error))  # as it crosses from a Ray worker
    assert (copy.field, copy.problem, copy.fix) == ("data.n_val", "too many samples", "lower it")
    wrapped = RayTaskError("build_shard", "Traceback ...", error)
    assert user_error_of(wrapped) is error
    assert user_error_of(wrapped.as_instanceof_cause()) is error
    assert user_error_of(WorkerGroupError("training failed", {0: wrapped})) is error
    assert user_error_of(RayTaskError("f", "Traceback ...", KeyError("bug"))) is None


def test_an_ambiguous_reference_date_is_one_data_assumption(tmp_path):
    import numpy as np
    import xarray as xr

    from incdyn.datasets.sources.gridded.opening import open_file

    path = tmp_path / "t.nc"
    time = xr.Variable("t", np.arange(3.0), {"units": "hours since 1-1-1 00:00:0.0"})
    xr.Dataset({"a": ("t", np.zeros(3))}, coords={"t": time}).to_netcdf(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_file(str(path))
    assert [w.category for w in caught] == [DataAssumption]  # one line for the file
    message = str(caught[0].message)
    assert message.startswith(f"data.params.url: {path}: the reference date '1-1-1 00:00:0.0'")
    assert "read as 0001-1-1 00:00:0.0 (year first" in message and "cftime" in message
