"""No function of platform/, models/ or datasets/ is longer than a page: 80 lines from its
``def`` line to its last line (decorators not counted), nested functions inside it included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("platform", "models", "datasets")
MAX_LINES = 80


def long_functions(source: str, *, where: str = "<source>", limit: int = MAX_LINES) -> list[str]:
    """One line per function (or method, nested or not) of ``source`` longer than ``limit``
    lines, counted as ``end_lineno - lineno + 1`` (``lineno`` is the ``def`` line)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{where}:{node.lineno} {node.name}: {lines} lines (at most {limit})")
    return found


def test_no_function_is_longer_than_80_lines():
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += long_functions(path.read_text(), where=str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


def test_the_check_finds_a_long_function_and_counts_from_the_def_line():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))  # def + body = 80 lines
    fits = f"@decorated\ndef fits():\n{body}"
    assert long_functions(fits) == []
    too_long = f"class C:\n    def method(self):\n{body.replace('    ', '        ')}        y = 0\n"
    assert long_functions(too_long) == ["<source>:2 method: 81 lines (at most 80)"]
