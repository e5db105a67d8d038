"""The ensemble-verification section of ``incdyn report``, from MLflow alone.

Per method and setting (the runs the main table counts; mean over seeds): spread–skill, CRPS,
coverage of the 50 % and 90 % intervals (raw and calibrated), the held-out variants, the
single- vs multi-step comparison; one figure with every method's error against K (Theorem 2)
and one with their rank histograms (from each cell's first run's ``verification.json``).
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from incdyn.platform.evaluation.verification_figures import k_curve_figure, rank_histogram_figure
from incdyn.platform.report.tables import build_report
from incdyn.platform.tracking import resolve_tracking_uri

COLUMNS = {  # metric -> column header
    "test_spread_skill": "spread–skill",
    "test_crps": "CRPS",
    "test_coverage_50": "cov. 50",
    "test_coverage_90": "cov. 90",
    "test_calibrated_coverage_90": "cal. cov. 90",
    "test_spread_skill_heldout": "spread–skill (held-out)",
    "test_calibrated_coverage_90_heldout": "cal. cov. 90 (held-out)",
    "test_spread_skill_single": "spread–skill single",
    "test_spread_skill_multi": "spread–skill multi",
    "test_mse_k_fit_a": "a (K→∞)",
    "test_mse_k_fit_b": "b",
}
K_METRIC = re.compile(r"^test_mse_k(\d+)$")


@dataclass
class VerificationReport:
    """Rows ``(method, setting)`` with their mean metrics, K curves and rank counts."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    metrics: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    curves: dict[str, tuple[dict[int, float], tuple[float, float] | None]] = field(
        default_factory=dict
    )
    ranks: dict[str, list[int]] = field(default_factory=dict)

    def to_markdown(self) -> str:
        shown = [m for m in COLUMNS if any(m in v for v in self.metrics.values())]
        head = ["method", "setting", *(COLUMNS[m] for m in shown), "better calibrated"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            values = self.metrics[row]
            cells = [f"{values[m]:.3f}" if m in values else "" for m in shown]
            better = values.get("test_better_calibrated")
            which = "" if better is None else ("multi" if better >= 0.5 else "single")
            lines.append("| " + " | ".join([*row, *cells, which]) + " |")
        return "\n".join(lines)

    def k_figure(self, title: str) -> Figure:
        return k_curve_figure(self.curves, title=title)

    def rank_figure(self, title: str) -> Figure:
        return rank_histogram_figure(self.ranks, title=title)


def _ranks_of(client: MlflowClient, run_id: str) -> list[int] | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "verification.json", tmp)
        except Exception:  # a run from before verification, or verification disabled
            return None
        return json.loads(Path(path).read_text()).get("ranks", {}).get("test")


def build_verification(
    experiment: str,
    tracking_uri: str | None = None,
    runs: Literal["latest", "all"] = "latest",
) -> VerificationReport | None:
    """The section for ``experiment``; None when no run carries verification metrics."""
    base = build_report(experiment, tracking_uri, "test_spread_skill", runs)
    if not base.cells:
        return None
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    out = VerificationReport()
    for (row, col), cell in base.cells.items():
        records = [client.get_run(run_id).data.metrics for run_id in cell.run_ids]
        keys = {k for r in records for k in r}
        mean = {k: statistics.fmean(r[k] for r in records if k in r) for k in keys}
        out.rows.append((row, col))
        out.metrics[(row, col)] = mean
        curve = {int(K_METRIC.match(k)[1]): v for k, v in mean.items() if K_METRIC.match(k)}
        fit = (
            (mean["test_mse_k_fit_a"], mean["test_mse_k_fit_b"])
            if "test_mse_k_fit_a" in mean
            else None
        )
        label = row if len(base.columns) == 1 else f"{row} ({col})"
        if curve:
            out.curves[label] = (curve, fit)
        ranks = _ranks_of(client, cell.run_ids[0])
        if ranks:
            out.ranks[label] = ranks
    return out


def log_verification_report(
    report: VerificationReport, run_id: str, title: str, tracking_uri: str | None = None
) -> None:
    """``verification.md`` and the two figures on the report's parent run."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    client.log_text(run_id, report.to_markdown(), "verification.md")
    if report.curves:
        client.log_figure(run_id, report.k_figure(title), "figures/report_error_vs_k.png")
    if report.ranks:
        client.log_figure(run_id, report.rank_figure(title), "figures/report_rank_histogram.png")
