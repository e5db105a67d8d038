"""The paper-style table (methods × settings, mean ± std over seeds, best in bold) from MLflow alone.

Reads only the MLflow experiment: parent runs (``incdyn.role`` ``experiment`` or ``sweep``) and
their FINISHED child runs (``method``, one per method × seed; ``trial``, one per sweep trial).
By default only the **latest FINISHED parent run of each (role, spec, setting)** counts, so a
rerun of a spec replaces its earlier results instead of being pooled with them; ``runs="all"``
pools every finished parent. Rows are methods (sweep trials: method and configuration), columns
the ``incdyn.setting`` tags, cells the mean ± sample std (ddof 1) of the metric over child runs;
the lowest mean of a column is bold. Under the table, per setting with truth and held-out
points, the rank agreement of the methods' held-out and truth test scores (Spearman's ρ,
:mod:`incdyn.platform.report.rank_agreement`; complete-data oracles left out).
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from incdyn.platform.report.comparison import log_comparison
from incdyn.platform.report.rank_agreement import RankAgreement, rank_agreement
from incdyn.platform.report.records import RunRecord, mlflow_records
from incdyn.platform.tracking import (
    CHILD_ROLES,
    PARENT_ROLES,
    ROLE_TRIAL,
    TAG_METHOD,
    TAG_ROLE,
    TAG_VARIANT,
    resolve_tracking_uri,
)


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]
    run_ids: tuple[str, ...]
    seeds: tuple[str, ...] = ()  # the runs' ``incdyn.seed`` tags, in the order of ``values``

    def by_seed(self) -> dict[str, float]:
        """Value per seed (the last run wins when ``runs="all"`` pools a seed twice)."""
        return dict(zip(self.seeds, self.values, strict=True))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds; None for a single run."""
        return statistics.stdev(self.values) if self.n > 1 else None

    def text(self) -> str:
        return f"{self.mean:.4g}" if self.std is None else f"{self.mean:.4g} ± {self.std:.2g}"


@dataclass
class Report:
    experiment: str
    metric: str
    rows: list[str]  # methods, in the order the runs started
    columns: list[str]  # settings, in the order the runs started
    cells: dict[tuple[str, str], Cell]
    parent_run_ids: list[str] = field(default_factory=list)  # the parents counted, oldest first
    # setting -> rank agreement of its methods' test_heldout_mse and test_mse (where both exist)
    agreement: dict[str, RankAgreement] = field(default_factory=dict)

    @property
    def latest_parent(self) -> str | None:
        return self.parent_run_ids[-1] if self.parent_run_ids else None

    def best(self, column: str) -> set[str]:
        """Rows with the lowest mean in ``column`` (ties all count)."""
        means = {r: self.cells[r, column].mean for r in self.rows if (r, column) in self.cells}
        low = min(means.values(), default=math.nan)
        return {r for r, m in means.items() if m == low}

    def to_markdown(self) -> str:
        lines = [
            f"{self.metric} on MLflow experiment {self.experiment!r}: mean ± std over seeds (n = runs), lowest in bold",
            "",
            "| method | " + " | ".join(self.columns) + " |",
            "|---|" + "---|" * len(self.columns),
        ]
        best = {c: self.best(c) for c in self.columns}
        for r in self.rows:
            cells = []
            for c in self.columns:
                cell = self.cells.get((r, c))
                text = "–" if cell is None else f"{cell.text()} (n={cell.n})"
                cells.append(f"**{text}**" if cell is not None and r in best[c] else text)
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        if self.agreement:
            lines.append("")
        lines += [f"{c}: {a.text()}" for c, a in self.agreement.items()]
        return "\n".join(lines)

    def to_csv(self) -> str:
        """Long form: one line per (method, setting) with full-precision mean and std."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", "setting", "metric", "mean", "std", "n", "best", "run_ids"])
        for c in self.columns:
            best = self.best(c)
            for r in self.rows:
                cell = self.cells.get((r, c))
                if cell is None:
                    continue
                std = "" if cell.std is None else repr(cell.std)
                writer.writerow(
                    [
                        r,
                        c,
                        self.metric,
                        repr(cell.mean),
                        std,
                        cell.n,
                        int(r in best),
                        ";".join(cell.run_ids),
                    ]
                )
        return out.getvalue()

    def figure(self) -> Figure:
        """Grouped bars: one group per setting, one bar per method, error bars ± std."""
        fig = Figure(
            figsize=(max(5.0, 1.2 + len(self.columns) * (0.5 + 0.35 * len(self.rows))), 4.2),
            layout="constrained",
        )
        ax = fig.subplots()
        width = 0.8 / max(1, len(self.rows))
        x = np.arange(len(self.columns))
        for i, r in enumerate(self.rows):
            cells = [self.cells.get((r, c)) for c in self.columns]
            means = [np.nan if c is None else c.mean for c in cells]
            stds = [0.0 if c is None or c.std is None else c.std for c in cells]
            ax.bar(
                x + (i - (len(self.rows) - 1) / 2) * width,
                means,
                width,
                yerr=stds,
                capsize=3,
                label=r,
            )
        ax.set_xticks(x, self.columns)
        ax.set_ylabel(self.metric)
        ax.set_title(f"{self.experiment}: {self.metric} (mean ± std over seeds)")
        ax.legend(fontsize=8)
        return fig


def _row_label(run: Run) -> str:
    tags = run.data.tags
    method = tags.get(TAG_METHOD, run.info.run_name or run.info.run_id)
    variant = tags.get(TAG_VARIANT)
    return f"{method} [{variant}]" if tags.get(TAG_ROLE) == ROLE_TRIAL and variant else method


def _record_label(record: RunRecord) -> str:
    variant = record.variant
    return (
        f"{record.method} [{variant}]" if record.role == ROLE_TRIAL and variant else record.method
    )


def runs_counted(
    records: list[RunRecord], runs: Literal["latest", "all"] = "latest"
) -> tuple[list[RunRecord], list[RunRecord]]:
    """``(parents, children)`` a report counts among FINISHED ``records`` (oldest first): the
    latest parent per (role, spec, setting) — or every parent with ``runs="all"`` — and their
    method or trial runs."""
    finished = sorted((r for r in records if r.status == "FINISHED"), key=lambda r: r.start_time)
    groups: dict[tuple, list[RunRecord]] = {}
    for r in finished:
        if r.role in PARENT_ROLES:
            groups.setdefault((r.role, r.spec, r.setting), []).append(r)
    chosen = [p for group in groups.values() for p in (group if runs == "all" else group[-1:])]
    chosen.sort(key=lambda r: r.start_time)
    ids = {p.run_id for p in chosen}
    children = [r for r in finished if r.role in CHILD_ROLES and r.parent in ids]
    return chosen, children


def _agreements(children: list[RunRecord], columns: list[str]) -> dict[str, RankAgreement]:
    """Per setting of ``columns``, the held-out vs truth rank agreement of its methods' runs
    (complete-data oracles, ``method.training_data: complete``, left out)."""
    out = {}
    for column in columns:
        rows = [
            {"method": _record_label(r), **r.metrics}
            for r in children
            if r.setting == column and r.params.get("method.training_data") != "complete"
        ]
        if (agreement := rank_agreement(rows)) is not None:
            out[column] = agreement
    return out


def report_from_records(
    experiment: str,
    records: list[RunRecord],
    metric: str = "test_mse",
    runs: Literal["latest", "all"] = "latest",
) -> Report:
    """The methods × settings table of ``metric`` from run records (MLflow's or a CSV's)."""
    chosen, children = runs_counted(records, runs)
    order = {r.run_id: i for i, r in enumerate(chosen)}
    every = children
    children = [r for r in children if metric in r.metrics]
    children.sort(key=lambda r: (order[r.parent], r.start_time))
    rows, columns, values = [], [], {}
    for run in children:
        row, col = _record_label(run), run.setting
        rows += [row] if row not in rows else []
        columns += [col] if col not in columns else []
        values.setdefault((row, col), []).append((run.metrics[metric], run.run_id, run.seed))
    cells = {
        k: Cell(*(tuple(t[i] for t in triples) for i in range(3))) for k, triples in values.items()
    }
    parents = [r.run_id for r in chosen]
    return Report(experiment, metric, rows, columns, cells, parents, _agreements(every, columns))


def build_report(
    experiment: str,
    tracking_uri: str | None = None,
    metric: str = "test_mse",
    runs: Literal["latest", "all"] = "latest",
) -> Report:
    """Rebuild the methods × settings table of ``metric`` for the MLflow experiment ``experiment``."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    return report_from_records(experiment, mlflow_records(experiment, client), metric, runs)


def _artifact(metric: str, suffix: str) -> str:
    return f"report.{suffix}" if metric == "test_mse" else f"report_{metric}.{suffix}"


def log_report(report: Report, tracking_uri: str | None = None) -> str:
    """Log ``report.md``, ``report.csv`` and the bar figure to the latest parent run counted, and
    per setting the comparison of its methods (test sample 0 and every test metric, ± seeds)."""
    if report.latest_parent is None:
        raise ValueError(
            f"MLflow experiment {report.experiment!r} has no finished parent run to log to"
        )
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    run_id = report.latest_parent
    client.log_text(run_id, report.to_markdown(), _artifact(report.metric, "md"))
    client.log_text(run_id, report.to_csv(), _artifact(report.metric, "csv"))
    client.log_figure(run_id, report.figure(), f"figures/report_{report.metric}.png")
    for column in report.columns:  # the methods compared per setting, over the runs counted
        ids = [
            i
            for r in report.rows
            if (r, column) in report.cells
            for i in report.cells[r, column].run_ids
        ]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", column)
        paths = (f"figures/report_comparison_{slug}.png", f"figures/report_test_metrics_{slug}.png")
        runs = [client.get_run(i) for i in ids]
        title = f"{report.experiment} ({column})"
        log_comparison(client, run_id, runs, title=title, paths=paths, label=_row_label)
    return run_id
