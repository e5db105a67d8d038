"""The paper's claims checked against MLflow runs alone: ``incdyn report --claims FILE``.

A claims file (YAML, validated like a spec) names the MLflow experiment and, per claim, one or
more *parts*: a data setting (a column of the runs), the methods compared with the paper's number
beside each, the inequalities between method means that the claim asserts (``"ours < missdiff"``),
and the claim's ratio with the paper's value (``ours / missdiff``: paper 1.931 / 3.077 = 0.63).
A part may *select* a row on the validation split — the best of several context/query ratios by
``val_mse`` (Table 6) — so that nothing is chosen on test data.

The verdict of a part: every inequality holds between the means over seeds; it is also checked
seed by seed ("holds in k of n seeds"). The ratio target is the paper's ratio or better (lower).
:func:`claims_markdown` writes the whole RESULTS.md: summary, per-claim tables (mean ± std, the
values per seed, the paper's numbers), the command, versions, seeds and the wall time of the
runs (first parent run's start to the last one's end, from MLflow).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform as _platform  # the standard library's (a top-level `platform` folder must never shadow it)
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient
from pydantic import Field, ValidationError, model_validator

from incdyn.platform.report.tables import Cell, Report, build_report
from incdyn.platform.spec import Strict
from incdyn.platform.tracking import resolve_tracking_uri

_INEQUALITY = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*<\s*([A-Za-z0-9_.\-]+)\s*$")


class RatioSpec(Strict):
    """``num / den`` of the row means; ``paper`` is the paper's value of the same ratio."""

    label: str
    num: str
    den: str
    paper: float = Field(gt=0.0)


class SelectSpec(Strict):
    """A row chosen on the validation split: the lowest mean of ``by`` among ``among``."""

    name: str  # how the inequalities and the ratio refer to the chosen row
    among: list[str] = Field(min_length=1)
    by: str = "val_mse"


class PartSpec(Strict):
    """One setting of a claim: rows (method → paper number or null), inequalities, ratio."""

    setting: str  # the runs' ``incdyn.setting`` tag, e.g. "navier_stokes pixel 20%"
    metric: str | None = None  # None: the file's metric
    also: list[str] = []  # further metrics shown beside it (e.g. test_feasibility)
    rows: dict[str, float | None] = Field(min_length=1)
    select: SelectSpec | None = None
    holds_if: list[str] = Field(min_length=1)  # "a < b" between row means
    informational: list[str] = []  # "a < b" shown, not part of the verdict
    ratio: RatioSpec

    @model_validator(mode="after")
    def _names_known(self) -> PartSpec:
        known = set(self.rows) | ({self.select.name} if self.select else set())
        if self.select and not set(self.select.among) <= set(self.rows):
            raise ValueError(
                f"select.among {self.select.among} must be rows of {sorted(self.rows)}"
            )
        for text in [*self.holds_if, *self.informational]:
            match = _INEQUALITY.match(text)
            if not match:
                raise ValueError(f"inequality {text!r} must read 'a < b' with two row names")
            unknown = {match[1], match[2]} - known
            if unknown:
                raise ValueError(f"inequality {text!r}: {sorted(unknown)} not in {sorted(known)}")
        unknown = {self.ratio.num, self.ratio.den} - known
        if unknown:
            raise ValueError(
                f"ratio {self.ratio.label!r}: {sorted(unknown)} not in {sorted(known)}"
            )
        return self


class ClaimSpec(Strict):
    id: int
    title: str
    statement: str  # the claim in words
    parts: list[PartSpec] = Field(min_length=1)
    notes: str = ""  # what was tried, caveats (written into RESULTS.md)


class ClaimsFile(Strict):
    title: str
    experiment: str  # the MLflow experiment every spec of the set logs to
    metric: str = "test_mse"
    command: str  # the one command that regenerates the file
    specs: list[str] = []  # the specs of the set (listed in RESULTS.md)
    scale: str = ""  # the reduced scale, in words
    claims: list[ClaimSpec] = Field(min_length=1)


def load_claims(path: str | Path) -> ClaimsFile:
    """Parse and validate a claims file; errors name the field and the problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"claims file {path}: {exc}") from exc
    try:
        return ClaimsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"claims file {path}: {problems}") from exc


# -- checking ------------------------------------------------------------------------------------


@dataclass
class Comparison:
    text: str  # "a < b"
    lhs: float
    rhs: float
    seeds_holding: int
    seeds: int

    @property
    def holds(self) -> bool:
        return self.lhs < self.rhs


@dataclass
class PartResult:
    spec: PartSpec
    metric: str
    cells: dict[str, Cell]  # row (and the selected alias) → cell of ``metric``
    extra: dict[tuple[str, str], Cell]  # (row, metric of ``also``) → cell
    selection: dict[str, float]  # candidate → mean of select.by (empty without select)
    selected: str | None
    comparisons: list[Comparison]
    informational: list[Comparison]
    ratio: float
    ratio_by_seed: dict[str, float]
    missing: list[str] = field(default_factory=list)  # rows without finished runs

    @property
    def holds(self) -> bool:
        return not self.missing and all(c.holds for c in self.comparisons)

    @property
    def seeds_holding(self) -> tuple[int, int]:
        """(seeds where every inequality holds, seeds compared)."""
        seeds = _common_seeds([self.cells[r] for r in self._names() if r in self.cells])
        ok = sum(
            all(self._value(a, s) < self._value(b, s) for a, b in self._pairs(self.spec.holds_if))
            for s in seeds
        )
        return ok, len(seeds)

    @property
    def meets_paper_ratio(self) -> bool:
        return self.ratio <= self.spec.ratio.paper

    def _names(self) -> set[str]:
        return {n for a, b in self._pairs(self.spec.holds_if) for n in (a, b)}

    def _value(self, row: str, seed: str) -> float:
        return self.cells[row].by_seed()[seed]

    @staticmethod
    def _pairs(texts: list[str]) -> list[tuple[str, str]]:
        return [(m[1], m[2]) for m in (_INEQUALITY.match(t) for t in texts) if m]


def _common_seeds(cells: list[Cell]) -> list[str]:
    if not cells:
        return []
    common = set(cells[0].seeds)
    for c in cells[1:]:
        common &= set(c.seeds)
    return sorted(common, key=lambda s: (len(s), s))


def _compare(text: str, cells: dict[str, Cell]) -> Comparison:
    match = _INEQUALITY.match(text)
    a, b = cells[match[1]], cells[match[2]]
    seeds = _common_seeds([a, b])
    ok = sum(a.by_seed()[s] < b.by_seed()[s] for s in seeds)
    return Comparison(text.strip(), a.mean, b.mean, ok, len(seeds))


def check_part(part: PartSpec, reports: dict[str, Report], default_metric: str) -> PartResult:
    """Evaluate one part against the reports (metric name → :class:`Report`)."""
    metric = part.metric or default_metric
    table = reports[metric]
    cells = {r: table.cells[r, part.setting] for r in part.rows if (r, part.setting) in table.cells}
    missing = [r for r in part.rows if r not in cells]
    extra = {
        (r, m): reports[m].cells[r, part.setting]
        for m in part.also
        for r in part.rows
        if (r, part.setting) in reports[m].cells
    }
    selection, selected = {}, None
    if part.select:
        by = reports[part.select.by]
        selection = {
            r: by.cells[r, part.setting].mean
            for r in part.select.among
            if (r, part.setting) in by.cells
        }
        if selection:
            selected = min(selection, key=selection.get)
            if selected in cells:
                cells[part.select.name] = cells[selected]
        else:
            missing.append(f"{part.select.name} (no {part.select.by} among {part.select.among})")
    if missing:
        return PartResult(
            part, metric, cells, extra, selection, selected, [], [], float("nan"), {}, missing
        )
    comparisons = [_compare(t, cells) for t in part.holds_if]
    informational = [_compare(t, cells) for t in part.informational]
    num, den = cells[part.ratio.num], cells[part.ratio.den]
    by_seed = {s: num.by_seed()[s] / den.by_seed()[s] for s in _common_seeds([num, den])}
    return PartResult(
        part,
        metric,
        cells,
        extra,
        selection,
        selected,
        comparisons,
        informational,
        num.mean / den.mean,
        by_seed,
    )


@dataclass
class ClaimsResult:
    file: ClaimsFile
    parts: dict[int, list[PartResult]]  # claim id → its parts
    tracking_uri: str
    parents: list  # the parent runs counted (mlflow Run), oldest first
    seeds: list[str]

    def holds(self, claim_id: int) -> bool:
        return all(p.holds for p in self.parts[claim_id])


def check_claims(claims: ClaimsFile, tracking_uri: str | None = None) -> ClaimsResult:
    """Build the reports the claims need from MLflow and check every claim."""
    uri = resolve_tracking_uri(tracking_uri)
    metrics = {claims.metric}
    for c in claims.claims:
        for p in c.parts:
            metrics |= {p.metric or claims.metric, *p.also}
            if p.select:
                metrics.add(p.select.by)
    reports = {m: build_report(claims.experiment, uri, metric=m) for m in sorted(metrics)}
    parts = {c.id: [check_part(p, reports, claims.metric) for p in c.parts] for c in claims.claims}
    client = MlflowClient(uri)
    ids = reports[claims.metric].parent_run_ids
    parents = [client.get_run(i) for i in ids]
    seeds = sorted(
        {s for cell in reports[claims.metric].cells.values() for s in cell.seeds},
        key=lambda s: (len(s), s),
    )
    return ClaimsResult(claims, parts, uri, parents, seeds)


# -- RESULTS.md ----------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    if x is None or x != x:  # None or NaN
        return "–"
    return f"{x:.4g}"


def _versions() -> str:
    names = [
        "incdyn",
        "torch",
        "ray",
        "mlflow",
        "numpy",
        "xarray",
        "zarr",
        "opencv-python-headless",
    ]
    found = []
    for n in names:
        try:
            found.append(f"{n} {importlib.metadata.version(n)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"Python {_platform.python_version()}; " + ", ".join(found)


def _wall_time(parents: list) -> str:
    if not parents:
        return "–"
    start = min(r.info.start_time for r in parents)
    end = max((r.info.end_time or r.info.start_time) for r in parents)
    minutes = (end - start) / 60_000
    when = dt.datetime.fromtimestamp(start / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{minutes:.1f} min (runs started {when})"


def _part_table(r: PartResult) -> list[str]:
    p = r.spec
    extra_metrics = list(p.also)
    header = ["method", f"{r.metric} (mean ± std)", "per seed", "paper", *extra_metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, paper in p.rows.items():
        cell = r.cells.get(row)
        label = row + (" ← chosen on val" if row == r.selected else "")
        if cell is None:
            cells = [label, "no finished run", "", _fmt(paper)] + ["" for _ in extra_metrics]
        else:
            seeds = ", ".join(f"{s}: {v:.4g}" for s, v in sorted(cell.by_seed().items()))
            cells = [label, f"{cell.text()} (n={cell.n})", seeds, _fmt(paper)]
            for m in extra_metrics:
                e = r.extra.get((row, m))
                cells.append("–" if e is None else e.text())
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _verdict(results: list[PartResult]) -> str:
    sentences = []
    for r in results:
        where = f"{r.spec.setting}"
        if r.missing:
            sentences.append(f"{where}: cannot be judged, rows without finished runs: {r.missing}.")
            continue
        failed = [c.text for c in r.comparisons if not c.holds]
        ok, n = r.seeds_holding
        ratio = (
            f"{r.spec.ratio.label} = {r.ratio:.3g} (paper {r.spec.ratio.paper:.3g}: "
            + ("as good or better" if r.meets_paper_ratio else "short of the paper's ratio")
            + ")"
        )
        if not failed:
            sentences.append(
                f"{where}: **holds** — {'; '.join(c.text for c in r.comparisons)} on the means, "
                f"and in {ok} of {n} seeds taken one by one; {ratio}."
            )
        else:
            sentences.append(
                f"{where}: **does not hold** — {'; '.join(failed)} fails on the means "
                f"(all inequalities hold in {ok} of {n} seeds); {ratio}."
            )
    return " ".join(sentences)


def claims_markdown(result: ClaimsResult) -> str:
    f = result.file
    lines = [f"# {f.title}", ""]
    lines += [
        f"Generated by `{f.command}`, which runs {', '.join(f'`{s}`' for s in f.specs)} and then "
        f"`incdyn report --claims` rebuilds this file from the MLflow experiment `{f.experiment}` alone.",
        "",
        f"- Seeds: {', '.join(result.seeds)} (training and sampling; the data set is fixed per spec).",
        f"- Wall time of the runs: {_wall_time(result.parents)}.",
        f"- Versions: {_versions()}.",
        f"- Machine: {_platform.machine()}, {os.cpu_count()} CPU cores.",
        f"- Metric: `{f.metric}` unless a table says otherwise (normalised units: MSE of the "
        "imputed field over all points; lower is better). Paper numbers are the paper's own "
        "(GPU scale, its units): compare the ratios, not the absolute values.",
    ]
    if f.scale:
        lines += ["", f"Scale: {f.scale.strip()}"]
    lines += [
        "",
        "## Summary",
        "",
        "| claim | ratio | incdyn | paper | verdict (means) | seeds where it holds |",
        "|---|---|---|---|---|---|",
    ]
    for c in f.claims:
        for r in result.parts[c.id]:
            ok, n = r.seeds_holding if not r.missing else (0, 0)
            verdict = "holds" if r.holds else ("no runs" if r.missing else "does not hold")
            lines.append(
                f"| {c.id}. {c.title} ({r.spec.setting}) | {r.spec.ratio.label} | {_fmt(r.ratio)} | "
                f"{r.spec.ratio.paper:.3g} | {verdict} | {ok}/{n} |"
            )
    for c in f.claims:
        lines += ["", f"## Claim {c.id}: {c.title}", "", c.statement.strip(), ""]
        for r in result.parts[c.id]:
            lines += [f"### {r.spec.setting}", ""]
            lines += _part_table(r)
            lines.append("")
            if r.selection:
                chosen = ", ".join(f"{k}: {v:.4g}" for k, v in r.selection.items())
                lines.append(
                    f"`{r.spec.select.name}` = `{r.selected}`, the lowest mean `{r.spec.select.by}` "
                    f"on the validation split ({chosen})."
                )
                lines.append("")
            for comp in r.comparisons + r.informational:
                tag = " (shown, not judged)" if comp in r.informational else ""
                mark = "✓" if comp.holds else "✗"
                lines.append(
                    f"- {mark} `{comp.text}`: {comp.lhs:.4g} vs {comp.rhs:.4g}; "
                    f"per seed {comp.seeds_holding}/{comp.seeds}{tag}"
                )
            if not r.missing:
                per_seed = ", ".join(f"{s}: {v:.3g}" for s, v in sorted(r.ratio_by_seed.items()))
                lines.append(
                    f"- ratio {r.spec.ratio.label} = {r.ratio:.3g} (per seed {per_seed}); "
                    f"paper {r.spec.ratio.paper:.3g}"
                )
            lines.append("")
        lines += [f"**Verdict.** {_verdict(result.parts[c.id])}", ""]
        if c.notes:
            lines += [c.notes.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"
