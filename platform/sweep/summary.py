"""What a sweep found, read back from MLflow: its trials, the best configuration, the heat map.

The best configuration has the lowest mean ``val_mse`` — the imputation error of the trial's
sampler on the validation split (:func:`~incdyn.platform.experiment.evaluate.evaluate_diffusion`), the
criterion by which Table 6's best ratio is chosen — over the seeds of the trials that finished
and were evaluated; ``test_mse`` is reported beside it and never chooses. ``val_loss`` (the
training objective on the validation split's observed values) is shown too, but it does not
compare ratios: each trial scores its own partition's query entries, so a smaller context makes
a harder task and a larger loss whatever the imputation is worth.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from incdyn.platform.report.tables import search_all
from incdyn.platform.tracking import (
    ROLE_TRIAL,
    TAG_BEST,
    TAG_ERROR,
    TAG_PARENT,
    TAG_ROLE,
    TAG_STOPPED,
    TAG_TUNE_TRIAL,
)


@dataclass(frozen=True)
class TrialRecord:
    """One trial's MLflow child run."""

    run_id: str
    status: str  # FINISHED (trained and evaluated), KILLED (stopped early), FAILED
    context_ratio: float
    query_ratio: float
    backbone: str
    seed: int
    val_loss: float | None  # last logged
    val_mse: float | None  # imputation error on the validation split: what chooses
    test_mse: float | None
    test_mse_unobserved: float | None


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration: means over its evaluated trials (one per seed and repeat)."""

    context_ratio: float
    query_ratio: float
    backbone: str
    n: int
    val_loss: float
    val_mse: float
    test_mse: float
    test_mse_unobserved: float

    @property
    def label(self) -> str:
        return f"context_ratio={self.context_ratio:g} query_ratio={self.query_ratio:g} backbone={self.backbone}"


def collect_trials(
    client: MlflowClient, experiment_id: str, parent_id: str, errors: dict[str, str] | None = None
) -> list[TrialRecord]:
    """The sweep's trial runs, once Tune is done.

    A run still RUNNING then did not finish its evaluation: FAILED when Tune saw its trial fail
    (``errors``: Tune trial path → error; the path names the trial id), else KILLED (stopped early
    by the scheduler).
    """
    errors = errors or {}
    runs = search_all(
        client,
        experiment_id,
        f"tags.`{TAG_PARENT}` = '{parent_id}' and tags.`{TAG_ROLE}` = '{ROLE_TRIAL}'",
    )
    records = []
    for run in sorted(runs, key=lambda r: r.info.start_time):
        status = run.info.status
        if status == "RUNNING":
            trial = run.data.tags.get(TAG_TUNE_TRIAL) or "?"
            error = next((e for path, e in errors.items() if trial in path), None)
            if error is None:
                client.set_tag(run.info.run_id, TAG_STOPPED, "early, by the scheduler")
            else:
                client.set_tag(run.info.run_id, TAG_ERROR, error[-5000:])
            status = "KILLED" if error is None else "FAILED"
            client.set_terminated(run.info.run_id, status)
        p, m = run.data.params, run.data.metrics
        records.append(
            TrialRecord(
                run_id=run.info.run_id,
                status=status,
                context_ratio=float(p["context_ratio"]),
                query_ratio=float(p["query_ratio"]),
                backbone=p["backbone"],
                seed=int(p["seed"]),
                val_loss=m.get("val_loss"),
                val_mse=m.get("val_mse"),
                test_mse=m.get("test_mse"),
                test_mse_unobserved=m.get("test_mse_unobserved"),
            )
        )
    return records


@dataclass
class SweepResult:
    experiment: str
    parent_run_id: str
    mode: str
    trials: list[TrialRecord]
    configs: list[ConfigSummary]  # evaluated configurations, best first
    seconds: float

    @property
    def best(self) -> ConfigSummary | None:
        return self.configs[0] if self.configs else None

    def table(self) -> str:
        head = "| context_ratio | query_ratio | backbone | n | val_loss | val_mse | test_mse | test_mse_unobserved |"
        lines = [head, "|---|---|---|---|---|---|---|---|"]
        for i, c in enumerate(self.configs):
            mark = "**" if i == 0 else ""
            lines.append(
                f"| {c.context_ratio:g} | {c.query_ratio:g} | {c.backbone} | {c.n} | "
                f"{c.val_loss:.4g} | {mark}{c.val_mse:.4g}{mark} | {c.test_mse:.4g} | "
                f"{c.test_mse_unobserved:.4g} |"
            )
        return "\n".join(lines)

    def describe(self) -> str:
        counts = {
            s: sum(t.status == s for t in self.trials) for s in ("FINISHED", "KILLED", "FAILED")
        }
        lines = [
            f"\nsweep ({self.mode}) of MLflow experiment {self.experiment!r}, run {self.parent_run_id}: "
            f"{len(self.trials)} trials ({counts['FINISHED']} evaluated, {counts['KILLED']} stopped early, "
            f"{counts['FAILED']} failed) in {self.seconds:.0f} s",
            self.table(),
        ]
        b = self.best
        if b is None:
            lines.append("no trial finished: no best configuration")
        else:
            lines.append(
                f"best configuration (lowest mean val_mse over {b.n} trial(s)): {b.label}"
                f"  val_mse={b.val_mse:.4g}  test_mse={b.test_mse:.4g}"
            )
        return "\n".join(lines)

    def log(self, client: MlflowClient, run_id: str, axes: dict[str, list]) -> None:
        """Log the table, the best configuration and the heat map to the sweep's parent run."""
        client.log_text(run_id, self.table(), "sweep.md")
        trials = [asdict(t) for t in self.trials]
        client.log_text(run_id, json.dumps(trials, indent=1), "trials.json")
        client.log_figure(run_id, ratio_heatmap(self.configs, axes), "figures/ratio_heatmap.png")
        b = self.best
        if b is None:
            return
        client.log_text(run_id, json.dumps(asdict(b), indent=1), "best.json")
        client.set_tag(run_id, TAG_BEST, b.label)
        stamp = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[
                Metric("best_val_loss", b.val_loss, stamp, 0),
                Metric("best_val_mse", b.val_mse, stamp, 0),
                Metric("best_test_mse", b.test_mse, stamp, 0),
                Metric("best_test_mse_unobserved", b.test_mse_unobserved, stamp, 0),
            ],
            params=[
                Param("best.context_ratio", f"{b.context_ratio:g}"),
                Param("best.query_ratio", f"{b.query_ratio:g}"),
                Param("best.backbone", b.backbone),
            ],
        )


def summarize(
    trials: list[TrialRecord], *, mode: str, parent_run_id: str, experiment: str, seconds: float
) -> SweepResult:
    groups: dict[tuple, list[TrialRecord]] = {}
    for t in trials:
        if t.status == "FINISHED" and None not in (t.val_loss, t.val_mse, t.test_mse):
            groups.setdefault((t.context_ratio, t.query_ratio, t.backbone), []).append(t)
    configs = [
        ConfigSummary(
            context_ratio=c,
            query_ratio=q,
            backbone=b,
            n=len(ts),
            val_loss=statistics.fmean(t.val_loss for t in ts),
            val_mse=statistics.fmean(t.val_mse for t in ts),
            test_mse=statistics.fmean(t.test_mse for t in ts),
            test_mse_unobserved=statistics.fmean(
                t.test_mse_unobserved if t.test_mse_unobserved is not None else math.nan for t in ts
            ),
        )
        for (c, q, b), ts in groups.items()
    ]
    configs.sort(key=lambda c: c.val_mse)
    return SweepResult(experiment, parent_run_id, mode, trials, configs, seconds)


def ratio_heatmap(configs: list[ConfigSummary], axes: dict[str, list]) -> Figure:
    """val_loss, val_mse and test_mse over the (context ratio × query ratio) grid, one row per backbone.

    Cells without an evaluated trial are blank; each cell is annotated with its value.
    """
    ctx = sorted(set(axes["context_ratio"]))
    qry = sorted(set(axes["query_ratio"]))
    backbones = list(dict.fromkeys(axes["backbone"]))
    metrics = ("val_loss", "val_mse", "test_mse")
    fig = Figure(figsize=(4.2 * len(metrics) + 1, 3.2 * len(backbones) + 0.6), layout="constrained")
    grid = fig.subplots(len(backbones), len(metrics), squeeze=False)
    for r, backbone in enumerate(backbones):
        for col, metric in enumerate(metrics):
            values = np.full((len(ctx), len(qry)), np.nan)
            for c in configs:
                if c.backbone == backbone and c.context_ratio in ctx and c.query_ratio in qry:
                    values[ctx.index(c.context_ratio), qry.index(c.query_ratio)] = getattr(
                        c, metric
                    )
            ax = grid[r][col]
            im = ax.imshow(
                np.ma.masked_invalid(values), cmap="viridis_r", origin="lower", aspect="auto"
            )
            for i, j in zip(*np.nonzero(np.isfinite(values)), strict=True):
                box = {"facecolor": "white", "alpha": 0.6, "linewidth": 0}
                ax.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center", bbox=box, size=8)
            ax.set_xticks(range(len(qry)), [f"{q:g}" for q in qry])
            ax.set_yticks(range(len(ctx)), [f"{c:g}" for c in ctx])
            ax.set_xlabel("query ratio")
            ax.set_ylabel("context ratio")
            ax.set_title(f"{metric} ({backbone})")
            fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle("sweep: mean over seeds of evaluated trials (best chosen on val_mse)")
    return fig
