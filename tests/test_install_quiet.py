"""``pip install -e .`` and ``pip wheel .`` print no setuptools warning block.

pip shows the build backend's output on every install. Both commands run here as a user runs
them, into a temporary prefix and folder (this venv is left alone), without build isolation:
the registry stays out of the test, and this venv's setuptools is the one pyproject asks for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
COMMANDS = {
    "editable": ["install", "--no-deps", "--no-build-isolation", "--ignore-installed", "--prefix"],
    "wheel": ["wheel", "--no-deps", "--no-build-isolation", "-w"],
}


@pytest.mark.parametrize("kind", sorted(COMMANDS))
def test_build_prints_no_warning(kind, tmp_path):
    target = ["-e", str(ROOT)] if kind == "editable" else [str(ROOT)]
    out = subprocess.run(
        [*PIP, *COMMANDS[kind], str(tmp_path), *target], capture_output=True, text=True
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    # pip's own notes about this machine's index locations are not the build's
    lines = [ln for ln in text.splitlines() if "WARNING: Location" not in ln]
    for marker in ("!!", "Warning", "Deprecat"):
        hits = [ln for ln in lines if marker in ln]
        assert not hits, f"pip {kind} printed {marker!r}:\n{text[-3000:]}"
