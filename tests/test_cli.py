"""The incdyn command line: dry runs and bad specs fail before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _incdyn(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "incdyn.platform.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_dry_run_prints_resolved_spec_with_overrides():
    out = _incdyn("run", "experiments/quickstart.yaml", "--dry-run", "--set", "training.steps=11")
    assert out.returncode == 0, out.stderr
    assert "steps: 11" in out.stdout and "ray train run for ours" in out.stdout


def test_bad_spec_fails_fast_with_named_field(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nmethods: [{name: a}]\ntraining: {lr: -1, wat: 2}\n")
    out = _incdyn("run", str(spec))
    assert out.returncode == 2
    assert "training.lr" in out.stderr and "training.wat: unknown key" in out.stderr
    assert "ray" not in out.stderr.lower().split("invalid")[0]  # failed before Ray started
