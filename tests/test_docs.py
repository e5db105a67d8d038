"""The README stays a front door, and every ``incdyn`` command the docs show still parses.

Every ``incdyn ...`` command in a ```` ```bash ```` block of ``README.md`` and ``docs/*.md`` is
parsed by the real parser (``incdyn.platform.cli.build_parser``), and an ``incdyn run`` of a spec
that exists in the repository also runs with ``--dry-run`` (its overrides applied, the spec
validated, nothing started), so a renamed command, flag, spec or spec field fails here.

Convention for commands a test cannot check (a cluster, a GPU, a command another page owns,
a synopsis with placeholders): end the command's first line with the comment
``# not checked: REASON``; the test skips it and nothing else. A whole block that must stay
verbatim (a script's lines, checked against the script elsewhere) is skipped by an HTML comment
``<!-- not checked: REASON -->`` among those right above its fence. Commands are found after any
prefix (``.venv/bin/incdyn``, ``ray job submit ... -- incdyn``, ``VAR=value incdyn``); a line ending in ``\\`` continues
the command; a shell operator (``|``, ``&&``, ``;``, ``>``, ``&``) ends it.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from incdyn.platform.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 150
NOT_CHECKED = "# not checked:"
NOT_CHECKED_BLOCK = "<!-- not checked:"
OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>&1"}


def _commands(path: Path) -> list[tuple[str, list[str]]]:
    """(where, argv after ``incdyn``) of every command in the file's bash blocks."""
    found = []
    blocks = re.findall(r"((?:^<!--.*-->\n)*)^```bash\n(.*?)^```", path.read_text(), re.S | re.M)
    for marks, block in blocks:
        if NOT_CHECKED_BLOCK in marks:
            continue
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if NOT_CHECKED in line or "incdyn" not in line:
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
            starts = True  # in a command's first position: after an operator or ``--``
            for i, token in enumerate(tokens):
                if starts and Path(token).name == "incdyn":
                    argv = []
                    for t in tokens[i + 1 :]:
                        if t in OPERATORS:
                            break
                        argv.append(t)
                    found.append((f"{path.name}: {line.strip()}", argv))
                starts = token in OPERATORS or token == "--" or (starts and "=" in token)
    return found


ALL = [c for path in DOCS for c in _commands(path)]


def test_the_readme_is_a_front_door_of_at_most_150_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    text = "\n".join(lines)
    for command in ("bash infra/dev.sh quickstart", "bash infra/dev.sh test"):
        assert command in text
    for page in re.findall(r"\]\((docs/[^)#]+)\)", text):  # every linked page exists
        assert (ROOT / page).exists(), page


def test_the_docs_show_commands_at_all():
    assert len(ALL) >= 20 and {argv[0] for _, argv in ALL} >= {
        "run", "data", "audit", "sweep", "report", "serve", "ui"
    }  # fmt: skip


@pytest.mark.parametrize("where,argv", ALL, ids=[w[:80] for w, _ in ALL])
def test_every_documented_command_parses_and_its_spec_resolves(where, argv):
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}\n  does not parse: {err.getvalue().strip()}")
    spec = getattr(args, "spec", None)
    if args.command == "run" and spec and (ROOT / spec).is_file():
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([*argv, "--dry-run"] if "--dry-run" not in argv else argv)
        assert rc == 0, f"{where}\n  --dry-run failed: {err.getvalue()[-2000:]}"
