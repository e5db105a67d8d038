"""What each layer imports, read from the source: every import of platform/, models/ and
datasets/ (function-local and relative ones included) goes downward in the layer table, no two
modules import each other through any chain, and serving stays free of training."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = {"platform": "incdyn.platform", "models": "incdyn.models", "datasets": "incdyn.datasets"}

# Module prefix -> layer; the longest matching prefix wins. A module at the top of platform/ is
# a shared piece unless named here; every sub-package of platform/ must be named.
LAYER_OF = {
    "incdyn.datasets": "datasets",
    "incdyn.models": "models",
    "incdyn.platform": "layer 1",
    "incdyn.platform.spec": "layer 1",
    "incdyn.platform.evaluation": "layer 2",
    "incdyn.platform.train": "layer 3",
    "incdyn.platform.serve": "layer 3",
    "incdyn.platform.registry": "layer 3",
    "incdyn.platform.suggest": "layer 3",
    "incdyn.platform.impute": "layer 3",
    "incdyn.platform.experiment": "layer 4",
    "incdyn.platform.sweep": "layer 4",
    "incdyn.platform.report": "layer 4",
    "incdyn.platform.ui": "layer 4",
    "incdyn.platform.cli": "layer 4",
}
# Layer -> the layers its modules may import (the same table is in docs/architecture.md).
ALLOWED = {
    "datasets": {"datasets"},
    "models": {"models", "datasets"},
    "layer 1": {"layer 1", "models", "datasets"},
    "layer 2": {"layer 2", "layer 1", "models", "datasets"},
    "layer 3": {"layer 3", "layer 2", "layer 1", "models", "datasets"},
    "layer 4": {"layer 4", "layer 3", "layer 2", "layer 1", "models", "datasets"},
}
# What a serving process must never load: the training loop and what only it needs.
NOT_FOR_SERVING = ("ray.train", "incdyn.models.objective", "incdyn.platform.train.worker")


def layer_of(module: str) -> str | None:
    """The layer of an ``incdyn`` module, by the longest prefix of ``LAYER_OF`` (None: none)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if (layer := LAYER_OF.get(".".join(parts[:n]))) is not None:
            return layer
    return None


def imports_of(
    module: str, source: str, *, is_package: bool = False, known: set[str] | None = None
) -> set[str]:
    """Every module that ``source`` imports anywhere (module level or inside a function), as
    absolute dotted names; relative imports are resolved against ``module``.

    ``from A import b`` names ``A.b`` when that is one of the ``known`` modules, else ``A`` (b is
    a name defined in A); with ``known`` None it names both."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                if known is None:
                    found |= {base, name}
                else:
                    found.add(name if name in known else base)
    return found


def import_graph(sources: dict[str, str], packages: Iterable[str] = ()) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` it imports (itself left out). ``sources`` maps
    dotted names to their text; ``packages`` names the modules that are a package's
    ``__init__``."""
    packages, known = set(packages), set(sources)
    return {
        module: (imports_of(module, text, is_package=module in packages, known=known) & known)
        - {module}
        for module, text in sources.items()
    }


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that goes up (or sideways to a layer not allowed), or whose module
    has no layer: ``a -> b: layer 3 may not import layer 4``."""
    found = []
    for module in sorted(graph):
        mine = layer_of(module)
        if mine is None:
            found.append(f"{module}: no layer (name it in LAYER_OF)")
            continue
        for target in sorted(graph[module]):
            theirs = layer_of(target)
            if theirs is not None and theirs not in ALLOWED[mine]:
                found.append(f"{module} -> {target}: {mine} may not import {theirs}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: each strongly connected component of more than one node
    (Tarjan's algorithm), its members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def unit_of(module: str) -> str:
    """The unit whose cycles count between packages: a sub-package of a top-level folder
    (``incdyn.platform.train``), or the module itself at a folder's top."""
    parts = module.split(".")
    return ".".join(parts[:3])


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` with each module folded into its unit (self-edges dropped)."""
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        mine = unit_of(module)
        units.setdefault(mine, set()).update(unit_of(t) for t in targets if unit_of(t) != mine)
    return units


def check(sources: dict[str, str], packages: Iterable[str] = ()) -> list[str]:
    """Every layering problem of ``sources`` (dotted name -> text): upward imports, modules
    without a layer, and import cycles between modules or between sub-packages."""
    graph = import_graph(sources, packages)
    problems = layer_violations(graph)
    problems += [f"import cycle between modules: {' <-> '.join(c)}" for c in cycles(graph)]
    problems += [
        f"import cycle between packages: {' <-> '.join(c)}" for c in cycles(unit_graph(graph))
    ]
    return problems


def repository_sources() -> tuple[dict[str, str], set[str]]:
    """The text of every module of platform/, models/ and datasets/ by its ``incdyn`` name, and
    the names that are packages."""
    sources, packages = {}, set()
    for folder, prefix in TOP.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                name = ".".join([prefix, *parts[:-1]])
                packages.add(name)
            else:
                name = ".".join([prefix, *parts])
            sources[name] = path.read_text()
    return sources, packages


def test_the_repository_imports_only_downward_and_without_cycles():
    problems = check(*repository_sources())
    assert not problems, "\n".join(problems)


def test_every_platform_sub_package_has_a_layer():
    for init in (ROOT / "platform").glob("*/__init__.py"):
        assert f"incdyn.platform.{init.parent.name}" in LAYER_OF, init.parent.name


def documented_layers(text: str) -> dict[str, set[str]]:
    """The layer table of docs/architecture.md: layer -> the layers it may import."""
    table = text.split("## Layers", 1)[1]
    found = {}
    rows = re.findall(r"^\| (.+?) \| .+? \| (.+?) \|$", table, flags=re.M)
    for row in rows[1:]:  # after the header
        layer = row[0].split(":")[0].strip("`")
        allowed = set()
        for part in row[1].split(", "):
            if m := re.fullmatch(r"layers (\d)–(\d)", part):
                allowed |= {f"layer {n}" for n in range(int(m[1]), int(m[2]) + 1)}
            else:
                allowed.add(part.strip("`"))
        found[layer] = allowed
    return found


def test_the_documented_layer_table_is_the_one_checked():
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert documented_layers(text) == ALLOWED


def test_the_check_fails_on_an_upward_import_even_inside_a_function():
    sources = {
        "incdyn.platform.train.worker": "def score():\n    from ..experiment import evaluate\n",
        "incdyn.platform.experiment.evaluate": "",
    }
    assert check(sources) == [
        "incdyn.platform.train.worker -> incdyn.platform.experiment.evaluate: "
        "layer 3 may not import layer 4"
    ]
    assert check({"incdyn.datasets.store": "import incdyn.models.partition\n",
                  "incdyn.models.partition": ""}) == [
        "incdyn.datasets.store -> incdyn.models.partition: datasets may not import models"
    ]  # fmt: skip


def test_the_check_fails_on_a_cycle_and_on_a_module_without_a_layer():
    sources = {
        "incdyn.platform.report.tables": "from incdyn.platform.report.records import load\n",
        "incdyn.platform.report.records": "def load():\n    from . import comparison\n",
        "incdyn.platform.report.comparison": "from incdyn.platform.report import tables\n",
    }
    assert check(sources) == [
        "import cycle between modules: incdyn.platform.report.comparison <-> "
        "incdyn.platform.report.records <-> incdyn.platform.report.tables"
    ]
    between_packages = {
        "incdyn.platform.train.a": "import incdyn.platform.serve.b\n",
        "incdyn.platform.serve.c": "import incdyn.platform.train.d\n",
        "incdyn.platform.serve.b": "",
        "incdyn.platform.train.d": "",
    }
    assert check(between_packages) == [
        "import cycle between packages: incdyn.platform.serve <-> incdyn.platform.train"
    ]
    assert check({"incdyn.elsewhere": ""}) == ["incdyn.elsewhere: no layer (name it in LAYER_OF)"]


def test_a_name_imported_from_a_package_is_an_edge_to_its_init():
    graph = import_graph(
        {
            "incdyn.platform.spec": "from incdyn.platform.spec.schema import ExperimentSpec\n",
            "incdyn.platform.spec.schema": "",
            "incdyn.platform.sweep.trial": "from incdyn.platform.spec import ExperimentSpec\n",
        },
        packages={"incdyn.platform.spec"},
    )
    assert graph["incdyn.platform.sweep.trial"] == {"incdyn.platform.spec"}
    assert graph["incdyn.platform.spec"] == {"incdyn.platform.spec.schema"}


def _loaded_statically(start: str, sources: dict[str, str], packages: set[str]) -> set[str]:
    """Every module that importing ``start`` may load, function-local imports included: the
    ``incdyn`` modules reachable from it and every other name they import."""
    seen, todo, names = set(), [start], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        named = imports_of(module, sources[module], is_package=module in packages)
        names |= named
        parents = {".".join(module.split(".")[:n]) for n in range(2, module.count(".") + 1)}
        todo += [m for m in named | parents if m in sources]
    return seen | names


def test_serving_imports_neither_ray_train_nor_the_objective():
    sources, packages = repository_sources()
    loaded = _loaded_statically("incdyn.platform.serve.app", sources, packages)
    for banned in NOT_FOR_SERVING:
        assert not any(m == banned or m.startswith(f"{banned}.") for m in loaded), banned


def test_serving_loads_neither_ray_train_nor_the_objective_when_imported():
    """At run time too: what the libraries serving imports load themselves counts here."""
    code = "import sys, incdyn.platform.serve.app; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    for banned in NOT_FOR_SERVING:
        assert banned not in loaded, banned
