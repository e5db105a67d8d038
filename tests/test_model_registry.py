"""Trained models in the MLflow model registry: ``incdyn run`` logs each trained diffusion model
as a pyfunc model (weights + resolved spec, loaded from code, nothing pickled), registers it as
``<experiment>-<method>``, and ``incdyn serve models:/NAME/VERSION`` serves it."""

from __future__ import annotations

import json
import socket

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from incdyn.platform.cli import main
from incdyn.platform.registry.model_source import resolve_checkpoint
from incdyn.platform.registry.publish import logged_name, registered_name


@pytest.fixture(scope="module")
def registry(comparison_run):
    _, spec, _ = comparison_run
    uri = spec.mlflow.tracking_uri
    return MlflowClient(uri, registry_uri=uri), uri, spec


def _field(seed: int = 0) -> np.ndarray:
    """A ``(T, C, H, W)`` field of the tiny spec's shape, NaN at 70 % of the points."""
    rng = np.random.default_rng(seed)
    field = rng.normal(size=(4, 1, 16, 16)).astype(np.float32)
    field[np.broadcast_to(rng.random((4, 1, 16, 16)) < 0.7, field.shape)] = np.nan
    return field


def test_every_trained_method_is_a_registered_version(registry):
    client, _, spec = registry
    for method in ("ours", "missdiff"):
        name = registered_name(spec.experiment_name, method)
        assert name == f"tiny-compare-{method}"
        (version,) = client.search_model_versions(f"name = '{name}'")
        assert version.tags["incdyn.method"] == method
        assert version.tags["incdyn.seed"] == "0"
        assert version.tags["incdyn.setting"] == spec.setting
        assert client.get_run(version.run_id).data.tags["incdyn.method"] == method
    names = {m.name for m in client.search_registered_models()}
    assert "tiny-compare-ns_inpaint" not in names  # a classical baseline trains nothing


def test_registered_model_loads_from_code_and_imputes(registry):
    _, uri, _ = registry
    checkpoint = resolve_checkpoint("models:/tiny-compare-ours/1", uri)
    assert json.loads((checkpoint / "meta.json").read_text())["method"]["name"] == "ours"
    # the run held out observed val points, so the calibration fitted on them came along; the
    # manifest, written last, says the copy is whole
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "calibration.json",
        "manifest.json",
        "meta.json",
        "model.pt",
    ]
    model_dir = checkpoint.parent.parent
    assert not list(model_dir.rglob("*.pkl"))  # models-from-code: no pickled class
    model = mlflow.pyfunc.load_model(str(model_dir))
    field = _field()
    out = model.predict(field, params={"k": 4, "seed": 3})
    again = model.predict(field, params={"k": 4, "seed": 3})
    observed = np.isfinite(field)
    assert out["imputed"].shape == field.shape and np.isfinite(out["imputed"]).all()
    np.testing.assert_array_equal(out["imputed"][observed], field[observed])
    np.testing.assert_array_equal(out["imputed"], again["imputed"])  # a seed fixes the answer
    assert (out["spread"][observed] == 0).all()
    # calibrated interval bounds at the level asked for, nested by level, around the mean
    narrow = model.predict(field, params={"k": 4, "seed": 3, "level": 0.5})
    assert (out["lower"] <= out["imputed"]).all() and (out["imputed"] <= out["upper"]).all()
    assert (out["upper"] - out["lower"] >= narrow["upper"] - narrow["lower"]).all()
    assert (out["upper"] > out["lower"])[~observed].any()
    np.testing.assert_array_equal(out["lower"][observed], field[observed])
    with pytest.raises(ValueError, match=r"level must be a number in \[0.01, 0.99\]"):
        model.predict(field, params={"k": 4, "level": 1.5})


def test_model_uris_resolve_by_version_latest_and_alias(registry):
    client, uri, _ = registry
    first = resolve_checkpoint("models:/tiny-compare-missdiff/1", uri)
    assert resolve_checkpoint("models:/tiny-compare-missdiff/latest", uri) == first
    client.set_registered_model_alias("tiny-compare-missdiff", "champion", "1")
    assert resolve_checkpoint("models:/tiny-compare-missdiff@champion", uri) == first


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("models:/nope/1", "no registered model 'nope' in the model registry at sqlite:"),
        ("models:/tiny-compare-ours/7", "registered model 'tiny-compare-ours' at .* no version 7"),
        ("models:/tiny-compare-ours@best", "has no alias 'best'"),
        ("models:/tiny-compare-ours", "not a model URI"),
    ],
)
def test_a_missing_model_is_a_clear_error(registry, model, message):
    _, uri, _ = registry
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        resolve_checkpoint(model, uri)


def test_incdyn_serve_names_a_missing_model_before_starting_ray(registry, capsys):
    _, uri, _ = registry
    with socket.socket() as s:  # a free port: Serve's own (8000) may be taken by another test
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    assert main(["serve", "models:/nope/3", "--tracking-uri", uri, "--port", port]) == 2
    err = capsys.readouterr().err
    assert "no registered model 'nope'" in err and uri in err and "tiny-compare-ours" in err


@pytest.mark.slow
def test_serve_answers_with_a_registered_model(registry):
    """``incdyn serve models:/tiny-compare-ours/1``'s application on a real Serve instance."""
    from ray import serve

    from incdyn.platform.serve.app import build_app
    from incdyn.platform.serve.client import health, impute
    from incdyn.platform.serve.config import ServeConfig
    from incdyn.platform.ui.server import free_port

    _, uri, _ = registry
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        app = build_app(
            "models:/tiny-compare-ours/1", config=ServeConfig(grid=(16, 16)), tracking_uri=uri
        )
        serve.run(app, name="incdyn-registry-test", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        info = health(url)
        assert info["shape"] == [4, 1, 16, 16] and info["method"]["name"] == "ours"
        field = _field(1)
        served, _ = impute(url, field, k=4, seed=5)
        local = mlflow.pyfunc.load_model(
            str(resolve_checkpoint("models:/tiny-compare-ours/1", uri).parent.parent)
        ).predict(field, params={"k": 4, "seed": 5})
        np.testing.assert_allclose(served, local["imputed"], rtol=1e-5, atol=1e-5)
    finally:
        serve.shutdown()


@pytest.mark.parametrize("method", ["r0.7", "a/b:c%d", "ours"])
def test_method_names_become_names_mlflow_accepts_for_a_logged_model(method):
    from mlflow.utils.validation import _validate_logged_model_name

    _validate_logged_model_name(logged_name(method))  # raises on a name MLflow refuses
    assert logged_name("ours") == "ours" and logged_name("r0.7") != logged_name("r0-8")
