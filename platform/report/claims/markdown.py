"""RESULTS.md from checked claims: summary, per-claim tables, pilots, the runs' environment.

Everything in the text comes from the run records (what MLflow holds, or the CSV exported from
it) and the claims file, so the same records give the same bytes wherever the file is rebuilt.
The words about a ratio are "stronger" or "weaker" than the paper's, or "reversed" when it lies on
the wrong side of 1, nothing else: a ratio is a reading, not a score to beat. Each metric is named
in its own units; each setting states the training budget it was measured at and the share of
observations held out for choosing, both read from the runs' params.
"""

from __future__ import annotations

import datetime as dt

from incdyn.datasets.holdout import units_withheld
from incdyn.datasets.metrics.physics import FEASIBILITY_UNITS
from incdyn.platform.report.claims.pilots import pilot_choices
from incdyn.platform.report.claims.verdicts import ClaimsResult, PartResult
from incdyn.platform.report.records import RunRecord
from incdyn.platform.tracking import PARENT_ROLES, TAG_MACHINE, TAG_VERSIONS

# The units each judged metric is in, as "`metric` is ..." reads (a metric not named: the MSE's).
METRIC_UNITS = {
    "test_mse": "normalised (squared errors in units of the training standard deviation)",
    "test_feasibility": FEASIBILITY_UNITS,
}


def _units(metric: str) -> str:
    return METRIC_UNITS.get(metric, METRIC_UNITS["test_mse"])


def _fmt(x: float | None) -> str:
    if x is None or x != x:  # None or NaN
        return "–"
    return f"{x:.4g}"


def _recorded(parents: list[RunRecord], tag: str) -> str:
    values = sorted({p.tags[tag] for p in parents if tag in p.tags})
    return " | ".join(values) if values else "not recorded"


def _wall_time(parents: list[RunRecord]) -> str:
    if not parents:
        return "–"
    start = min(r.start_time for r in parents)
    end = max((r.end_time or r.start_time) for r in parents)
    when = dt.datetime.fromtimestamp(start / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{(end - start) / 60_000:.1f} min (runs started {when})"


def _all_parents(result: ClaimsResult) -> list[RunRecord]:
    return result.parents + [p for p in result.pilots if p.role in PARENT_ROLES]


def _seeds_line(result: ClaimsResult) -> str:
    per_seed = [p.params.get("data.per_seed") == "True" for p in result.parents]
    if per_seed and all(per_seed):
        data = "each seed draws its own training, validation and test data set"
    elif any(per_seed):
        data = "some specs draw a data set per seed, others one data set for every seed"
    else:
        data = "the data set is fixed per spec"
    return f"{', '.join(result.seeds)} (training and sampling; {data})"


def _row_label(r: PartResult, row: str) -> str:
    p = r.spec
    if row in p.reference:
        return f"{row} ({p.reference[row]})"
    chosen = {r.selected} if r.selected else set()
    if p.select and r.selected:
        i = p.select.among.index(r.selected)
        chosen |= {rows[i] for rows in p.select.follow.values()}
    return row + (f" ← chosen on {p.select.by}" if p.select and row in chosen else "")


def _part_table(r: PartResult) -> list[str]:
    extra_metrics = list(r.spec.also)
    header = ["method", f"{r.metric} (mean ± std)", "per seed", "paper", *extra_metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, paper in r.spec.rows.items():
        cell = r.cells.get(row)
        label = _row_label(r, row)
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


def _ratio_words(r: PartResult) -> str:
    paper = r.spec.ratio.paper
    return f"{r.spec.ratio.label} = {r.ratio:.3g} against the paper's {paper:.3g}: {r.versus_paper}"


def _verdict(r: PartResult) -> str:
    where = f"{r.spec.setting}" + (f" ({r.spec.reading})" if r.spec.reading else "")
    if r.missing:
        return f"{where}: cannot be judged, rows without finished runs: {r.missing}."
    ok, n = r.seeds_holding
    failed = [c.text for c in r.comparisons if not c.holds]
    judged = "; ".join(c.text for c in r.comparisons)
    head = (
        f"**holds** on the means ({judged})"
        if not failed
        else f"**does not hold** on the means ({'; '.join(failed)} "
        + ("fails)" if len(failed) == 1 else "fail)")
    )
    return (
        f"{where}: {head}; seed by seed every inequality holds in {ok} of {n} seeds; "
        f"{_ratio_words(r)}."
    )


def _part_runs(result: ClaimsResult, r: PartResult) -> list[RunRecord]:
    ids = {i for cell in r.cells.values() for i in cell.run_ids}
    return [rec for rec in result.records if rec.run_id in ids]


def _steps(runs: list[RunRecord]) -> str:
    """The training budget of a part's runs: ``300`` or ``300, 600``; "–" if not recorded."""
    values = {rec.params["training.steps"] for rec in runs if "training.steps" in rec.params}
    return ", ".join(sorted(values, key=lambda v: (len(v), v))) or "–"


def _budget(runs: list[RunRecord]) -> str:
    steps = _steps(runs)
    batches = {rec.params.get("training.batch_size") for rec in runs} - {None}
    batch = f" of batch {', '.join(sorted(batches))}" if batches else ""
    return f"{steps} training steps{batch} per trained model"


def _heldout(runs: list[RunRecord]) -> str:
    """The observations held out of each val/test sample, as they are: whole tiles of a static
    block mask counted (one of 8 is 12.5 %, not the nominal tenth), a share of points else."""
    shares = set()
    for rec in runs:
        q = rec.params
        fraction = q.get("evaluation.holdout.fraction")
        if fraction in (None, "None"):
            continue
        f = float(fraction)
        if q.get("data.observation.kind") == "block" and q.get("data.observation.static") == "True":
            n = int(q["data.observation.k"])
            k = units_withheld(n, f)
            shares.add(
                f"{k} of the {n} observed tiles of each validation and test sample "
                f"({100 * k / n:.3g} %), the same in every frame"
            )
        else:
            unit = {"pixel": "points", "block": "tiles", "station": "stations"}.get(
                q.get("data.observation.kind", ""), "patches"
            )
            shares.add(
                f"{100 * f:.3g} % of the observed {unit} of each validation and test sample "
                f"(rounded to whole {unit})"
            )
    return "; ".join(sorted(shares)) or "none"


def _part_lines(result: ClaimsResult, r: PartResult) -> list[str]:
    p = r.spec
    runs = _part_runs(result, r)
    lines = [f"### {p.setting}" + (f" — {p.reading}" if p.reading else ""), ""]
    lines += [
        f"Measured at {_budget(runs)}. `{r.metric}` is {_units(r.metric)}; lower is better. "
        f"Held out for truth-free scoring and choosing: {_heldout(runs)}.",
        "",
    ]
    lines += [*_part_table(r), ""]
    if r.selection:
        values = ", ".join(f"{k}: {v:.4g}" for k, v in r.selection.items())
        lines += [
            f"`{p.select.name}` = `{r.selected}`: the lowest mean `{p.select.by}` over the seeds, "
            f"on the validation split ({values}).",
            "",
        ]
    for comp in r.comparisons + r.informational:
        tag = " (shown, not judged)" if comp in r.informational else ""
        mark = "✓" if comp.holds else "✗"
        lines.append(
            f"- {mark} `{comp.text}`: {comp.lhs:.4g} vs {comp.rhs:.4g}; "
            f"per seed {comp.seeds_holding}/{comp.seeds}{tag}"
        )
    if not r.missing:
        per_seed = ", ".join(f"{s}: {v:.3g}" for s, v in sorted(r.ratio_by_seed.items()))
        lines.append(f"- ratio {_ratio_words(r)} (per seed {per_seed})")
        num = r.cells.get(p.ratio.num)
        for row, label in p.reference.items():
            ref = r.cells.get(row)
            if ref is not None and num is not None:
                lines.append(
                    f"- reference `{row}` ({label}, not judged): {r.metric} {ref.mean:.4g}; "
                    f"{p.ratio.num}/{row} = {num.mean / ref.mean:.3g}"
                )
    return [*lines, ""]


def _summary(result: ClaimsResult) -> list[str]:
    lines = [
        "| claim | setting (reading) | judged on | training steps | ratio | incdyn | paper "
        "| against the paper | verdict (means) | seeds where it holds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result.file.claims:
        for r in result.parts[c.id]:
            ok, n = r.seeds_holding if not r.missing else (0, 0)
            verdict = "holds" if r.holds else ("no runs" if r.missing else "does not hold")
            where = r.spec.setting + (f" ({r.spec.reading})" if r.spec.reading else "")
            versus = "–" if r.missing else r.versus_paper
            steps = _steps(_part_runs(result, r))
            lines.append(
                f"| {c.id}. {c.title} | {where} | `{r.metric}` | {steps} | {r.spec.ratio.label} | "
                f"{_fmt(r.ratio)} | {r.spec.ratio.paper:.3g} | {versus} | {verdict} | {ok}/{n} |"
            )
    return lines


def _judged(result: ClaimsResult) -> set[str]:
    return {r.metric for parts in result.parts.values() for r in parts}


def _pilot_lines(result: ClaimsResult) -> list[str]:
    spec = result.file.pilots
    if spec is None:
        return []
    lines = [
        "## Pilots",
        "",
        f"`{spec.param}` of each spec (and, where a pilot runs two methods, the method), chosen "
        f"before the claims' runs by the lowest mean `{spec.by}` of its pilot runs (MLflow "
        f"experiment `{spec.experiment}`, their own seed and data set); every candidate:",
        "",
        f"| spec | method | {spec.param} | {spec.by} (mean) | runs | chosen |",
        "|---|---|---|---|---|---|",
    ]
    choices = pilot_choices(result.pilots, spec.param, spec.by)
    if not choices:
        return [*lines, "", "No finished pilot run.", ""]
    for choice in choices:
        for (method, value), (mean, n) in choice.candidates.items():
            mark = "✓" if (method, value) == choice.chosen else ""
            lines.append(f"| {choice.spec} | {method} | {value} | {mean:.4g} | {n} | {mark} |")
    return [*lines, ""]


def claims_markdown(result: ClaimsResult, runs_csv: str = "RESULTS_runs.csv") -> str:
    """The whole RESULTS.md; ``runs_csv`` is the name of the runs' CSV written beside it."""
    f = result.file
    source = f"`{runs_csv}`" + (" and its pilots' CSV" if f.pilots else "")
    lines = [f"# {f.title}", ""]
    lines += [
        f"Generated by `{f.command}`, which runs {', '.join(f'`{s}`' for s in f.specs)}"
        + (f" under the protocol of `{f.protocol}`" if f.protocol else "")
        + f"; `incdyn report --claims` then writes this file and {source} (every run it uses, "
        f"exported from the MLflow experiment `{f.experiment}`), and rebuilds this file from "
        "that CSV alone with `--from-csv`.",
        "",
        f"- Seeds: {_seeds_line(result)}.",
        f"- Wall time of the runs (pilots included): {_wall_time(_all_parents(result))}.",
        f"- Versions: {_recorded(result.parents, TAG_VERSIONS)}.",
        f"- Machine: {_recorded(result.parents, TAG_MACHINE)}.",
        "- Each setting is judged on the paper's metric for its table (the summary's `judged on` "
        "column; lower is better), at the training budget the summary states: "
        + "; ".join(f"`{m}` is {_units(m)}" for m in sorted(_judged(result)))
        + ". Paper numbers are the paper's own (GPU scale, its units): compare the ratios, not "
        "the absolute values. A ratio below the paper's is a *stronger* effect than the "
        "paper's, between the paper's and 1 a *weaker* one, above 1 *reversed* (the effect "
        "goes the other way).",
    ]
    if f.scale:
        lines += ["", f"Scale: {f.scale.strip()}"]
    lines += ["", "## Summary", "", *_summary(result), ""]
    lines += _pilot_lines(result)
    for c in f.claims:
        lines += [f"## Claim {c.id}: {c.title}", "", c.statement.strip(), ""]
        for r in result.parts[c.id]:
            lines += _part_lines(result, r)
        verdicts = " ".join(_verdict(r) for r in result.parts[c.id])
        lines += [f"**Verdict.** {verdicts}", ""]
        if c.notes:
            lines += [c.notes.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"
