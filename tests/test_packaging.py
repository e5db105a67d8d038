"""The incdyn namespace maps the top-level folders without shadowing stdlib `platform`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = {"platform": "incdyn.platform", "models": "incdyn.models", "datasets": "incdyn.datasets"}


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _expected_packages() -> set[str]:
    found = set()
    for folder, package in TOP.items():
        found.add(package)
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    return found


def test_top_level_folders_have_no_init():
    for folder in TOP:
        assert not (ROOT / folder / "__init__.py").exists(), (
            f"{folder}/__init__.py shadows a module"
        )


def test_package_list_matches_folders():
    cfg = _config()
    assert set(cfg["packages"]) == _expected_packages()
    for folder, package in TOP.items():
        assert cfg["package-dir"][package] == folder


def test_stdlib_platform_intact_from_repo_root():
    code = "import platform; platform.system(); import incdyn.platform.cli, incdyn.models.backbones.unet, incdyn.datasets.store"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_module_imports_from_repo_root():
    modules = [
        f"{TOP[p.parts[0]]}.{'.'.join(p.with_suffix('').parts[1:])}"
        for folder in TOP
        for p in (q.relative_to(ROOT) for q in (ROOT / folder).rglob("*.py"))
        if p.name != "__init__.py"
    ]
    code = "import importlib, platform; platform.system()\n" + "\n".join(
        f"importlib.import_module({m!r})" for m in modules
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_built_wheel_holds_every_module(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("incdyn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in TOP.items():
        for py in (ROOT / folder).rglob("*.py"):
            rel = py.relative_to(ROOT / folder)
            assert "/".join([*package.split("."), *rel.parts]) in names, (
                f"{py} missing from the wheel"
            )
    assert not any(n.startswith(("platform/", "models/", "datasets/")) for n in names)
