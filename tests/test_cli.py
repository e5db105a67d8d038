"""The incdyn command line: dry runs and bad specs fail before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _incdyn(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "incdyn.platform.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_dry_run_prints_resolved_spec_with_overrides():
    out = _incdyn("run", "experiments/quickstart.yaml", "--dry-run", "--set", "training.steps=11")
    assert out.returncode == 0, out.stderr
    assert "steps: 11" in out.stdout and "ray train run for ours" in out.stdout


def test_bad_spec_fails_fast_with_named_field(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nmethods: [{name: a}]\ntraining: {lr: -1, wat: 2}\n")
    out = _incdyn("run", str(spec))
    assert out.returncode == 2
    assert out.stderr.startswith("incdyn: error: training.lr: ") and out.stderr.count("\n") == 1
    assert "training.wat: unknown key" in out.stderr and "Traceback" not in out.stderr


def test_run_refuses_zero_exposure_strategy_before_ray(tmp_path):
    spec = tmp_path / "incorrect.yaml"
    spec.write_text(
        "name: incorrect\n"
        "data: {params: {grid: 16, frames: 4}, observation: {kind: block, k: 5}}\n"
        "methods: [{name: pixel_on_blocks, partition: {kind: pixel}}]\n"
    )
    out = _incdyn("run", str(spec), cwd=tmp_path)
    assert out.returncode == 2
    assert "never queried" in out.stderr and "allow_zero_exposure" in out.stderr
    assert not (tmp_path / "data").exists()  # refused before any data or Ray


def test_audit_reports_zero_exposure_of_pixel_partition_on_block_masks(tmp_path):
    spec = tmp_path / "audit.yaml"
    spec.write_text(
        "name: audit\n"
        "data: {params: {grid: 18, frames: 2}, observation: {kind: block, k: 5}}\n"
        "methods:\n"
        "  - {name: block, partition: {kind: block}}\n"
        "  - {name: pixel, partition: {kind: pixel}, allow_zero_exposure: true}\n"
    )
    out = _incdyn("audit", str(spec), "--out", str(tmp_path / "maps"), cwd=tmp_path)
    assert out.returncode == 1  # some method has zero exposure
    block, pixel = out.stdout.split("] pixel:")
    assert "ZERO EXPOSURE" not in block and "ZERO EXPOSURE" in pixel
    assert (tmp_path / "maps" / "audit-block-exposure.png").is_file()
