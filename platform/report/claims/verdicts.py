"""Claims checked against run records (MLflow's or a CSV's): each inequality on the means over
seeds and seed by seed; the ratio beside the paper's (stronger, weaker, or reversed when it lies
on the wrong side of 1), never a score."""

from __future__ import annotations

from dataclasses import dataclass, field

from incdyn.platform.report.claims.schema import INEQUALITY, ClaimsFile, PartSpec
from incdyn.platform.report.records import RunRecord
from incdyn.platform.report.tables import Cell, Report, report_from_records, runs_counted


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
    def versus_paper(self) -> str:
        """``stronger`` when the ratio lies further below 1 than the paper's (a larger effect
        in the claimed direction), ``weaker`` when it lies closer to 1, ``reversed`` when it
        lies above 1 (the effect goes the other way), ``equal``."""
        if self.ratio > 1:
            return "reversed"
        if self.ratio == self.spec.ratio.paper:
            return "equal"
        return "stronger" if self.ratio < self.spec.ratio.paper else "weaker"

    def _names(self) -> set[str]:
        return {n for a, b in self._pairs(self.spec.holds_if) for n in (a, b)}

    def _value(self, row: str, seed: str) -> float:
        return self.cells[row].by_seed()[seed]

    @staticmethod
    def _pairs(texts: list[str]) -> list[tuple[str, str]]:
        return [(m[1], m[2]) for m in (INEQUALITY.match(t) for t in texts) if m]


def _common_seeds(cells: list[Cell]) -> list[str]:
    if not cells:
        return []
    common = set(cells[0].seeds)
    for c in cells[1:]:
        common &= set(c.seeds)
    return sorted(common, key=lambda s: (len(s), s))


def _compare(text: str, cells: dict[str, Cell]) -> Comparison:
    match = INEQUALITY.match(text)
    a, b = cells[match[1]], cells[match[2]]
    seeds = _common_seeds([a, b])
    ok = sum(a.by_seed()[s] < b.by_seed()[s] for s in seeds)
    return Comparison(text.strip(), a.mean, b.mean, ok, len(seeds))


def check_part(part: PartSpec, reports: dict[str, Report], default_metric: str) -> PartResult:
    """Evaluate one part against the reports (metric name → :class:`Report`)."""
    metric = part.metric or default_metric
    table = reports[metric]
    cells = {r: table.cells[r, part.setting] for r in part.rows if (r, part.setting) in table.cells}
    missing = [r for r in part.rows if r not in cells and r not in part.reference]
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
            position = part.select.among.index(selected)
            chosen = {part.select.name: selected}
            chosen |= {alias: rows[position] for alias, rows in part.select.follow.items()}
            for alias, row in chosen.items():
                if row in cells:
                    cells[alias] = cells[row]
                else:
                    missing.append(f"{alias} ({row})")
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
    records: list[RunRecord]  # every run used: the parents counted and their children
    parents: list[RunRecord]  # the parent runs counted, oldest first
    seeds: list[str]
    pilots: list[RunRecord] = field(default_factory=list)  # the pilot runs, if any

    def holds(self, claim_id: int) -> bool:
        return all(p.holds for p in self.parts[claim_id])


def _metrics_needed(claims: ClaimsFile) -> set[str]:
    metrics = {claims.metric}
    for c in claims.claims:
        for p in c.parts:
            metrics |= {p.metric or claims.metric, *p.also}
            if p.select:
                metrics.add(p.select.by)
    return metrics


def check_claims(
    claims: ClaimsFile, records: list[RunRecord], pilots: list[RunRecord] | None = None
) -> ClaimsResult:
    """Check every claim against ``records`` (the runs of ``claims.experiment``): the latest
    finished parent run per spec and setting and its method runs count."""
    parents, children = runs_counted(records)
    used = sorted(parents + children, key=lambda r: (r.start_time, r.run_id))
    reports: dict[str, Report] = {
        m: report_from_records(claims.experiment, used, metric=m)
        for m in sorted(_metrics_needed(claims))
    }
    parts = {c.id: [check_part(p, reports, claims.metric) for p in c.parts] for c in claims.claims}
    seeds = sorted({r.seed for r in children}, key=lambda s: (len(s), s))
    pilot_used = []
    if pilots:
        pilot_parents, pilot_children = runs_counted(pilots, "all")
        pilot_used = sorted(pilot_parents + pilot_children, key=lambda r: (r.start_time, r.run_id))
    return ClaimsResult(claims, parts, used, parents, seeds, pilot_used)
