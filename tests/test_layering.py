"""What each layer imports: serving stays free of training; models and data stay free of the
platform."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_serving_imports_neither_ray_train_nor_the_objective():
    loaded = _loaded_after("incdyn.platform.serve.app")
    assert "ray.train" not in loaded
    assert "incdyn.models.objective" not in loaded
    assert "incdyn.platform.train.worker" not in loaded


def test_models_and_datasets_import_nothing_of_the_platform():
    for module in ("incdyn.models.samplers.registry", "incdyn.models.exposure"):
        assert not any(m.startswith("incdyn.platform") for m in _loaded_after(module)), module
    loaded = _loaded_after("incdyn.datasets.build")
    assert not any(m.startswith(("incdyn.platform", "incdyn.models")) for m in loaded)
