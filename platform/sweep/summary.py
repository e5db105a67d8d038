"""What a sweep found, read back from MLflow: its trials, the best configuration, the heat map.

The best configuration has the lowest mean of the spec's criterion over the seeds of the trials
that finished and were evaluated: ``val_heldout_mse`` — the imputation error of the trial's
sampler at the validation split's held-out observed points, no truth needed — or, when the spec
asks for it (or has no held-out points), ``val_mse``, the error against the validation truth
(:func:`~incdyn.platform.evaluation.evaluate.evaluate_diffusion`); ``test_mse`` is reported beside
it and never chooses. Where both criteria exist, their rank agreement across the configurations
(Spearman's ρ) is printed and logged. ``val_loss`` (the
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

from incdyn.platform.ghosts import TAG_REPLACED_BY
from incdyn.platform.sweep.agreement import spearman
from incdyn.platform.tracking import (
    ROLE_TRIAL,
    TAG_BEST,
    TAG_ERROR,
    TAG_PARENT,
    TAG_ROLE,
    TAG_STOPPED,
    TAG_TUNE_TRIAL,
    search_all,
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
    val_heldout_mse: float | None = None  # error at held-out observed val points: no truth


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
    val_heldout_mse: float = math.nan

    @property
    def label(self) -> str:
        return f"context_ratio={self.context_ratio:g} query_ratio={self.query_ratio:g} backbone={self.backbone}"


def collect_trials(
    client: MlflowClient, experiment_id: str, parent_id: str, errors: dict[str, str] | None = None
) -> list[TrialRecord]:
    """The sweep's trial runs, once Tune is done.

    A run still RUNNING then did not finish its evaluation: FAILED when Tune saw its trial fail
    (``errors``: Tune trial path → error; the path names the trial id), else KILLED (stopped early
    by the scheduler). A run of a killed attempt, tagged with the run that replaced it, is left
    out: its trial ran again.
    """
    errors = errors or {}
    runs = search_all(
        client,
        experiment_id,
        f"tags.`{TAG_PARENT}` = '{parent_id}' and tags.`{TAG_ROLE}` = '{ROLE_TRIAL}'",
    )
    records = []
    for run in sorted(runs, key=lambda r: r.info.start_time):
        if TAG_REPLACED_BY in run.data.tags:  # a killed attempt's trial, run again since
            continue
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
                val_heldout_mse=m.get("val_heldout_mse"),
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
    criterion: str = "val_heldout_mse"  # what chose the best configuration

    @property
    def agreement(self) -> float:
        """Spearman's ρ of ``val_heldout_mse`` and ``val_mse`` across configurations (NaN
        unless both exist for at least 3)."""
        return spearman(
            [c.val_heldout_mse for c in self.configs], [c.val_mse for c in self.configs]
        )

    @property
    def best(self) -> ConfigSummary | None:
        return self.configs[0] if self.configs else None

    def table(self) -> str:
        head = "| context_ratio | query_ratio | backbone | n | val_loss | val_mse | test_mse | test_mse_unobserved | val_heldout_mse |"
        lines = [head, "|---|---|---|---|---|---|---|---|---|"]
        for i, c in enumerate(self.configs):
            truth = "**" if i == 0 and self.criterion == "val_mse" else ""
            held = "**" if i == 0 and self.criterion == "val_heldout_mse" else ""
            lines.append(
                f"| {c.context_ratio:g} | {c.query_ratio:g} | {c.backbone} | {c.n} | "
                f"{c.val_loss:.4g} | {truth}{c.val_mse:.4g}{truth} | {c.test_mse:.4g} | "
                f"{c.test_mse_unobserved:.4g} | {held}{c.val_heldout_mse:.4g}{held} |"
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
                f"best configuration (lowest mean {self.criterion} over {b.n} trial(s)): {b.label}"
                f"  {self.criterion}={getattr(b, self.criterion):.4g}  test_mse={b.test_mse:.4g}"
            )
        if math.isfinite(self.agreement):
            lines.append(
                f"rank agreement of val_heldout_mse with val_mse (truth) across "
                f"{len(self.configs)} configurations: Spearman rho = {self.agreement:.3f}"
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
        held, agree = math.isfinite(b.val_heldout_mse), math.isfinite(self.agreement)
        stamp = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[
                Metric("best_val_loss", b.val_loss, stamp, 0),
                Metric("best_val_mse", b.val_mse, stamp, 0),
                Metric("best_test_mse", b.test_mse, stamp, 0),
                Metric("best_test_mse_unobserved", b.test_mse_unobserved, stamp, 0),
                *[Metric("best_val_heldout_mse", b.val_heldout_mse, stamp, 0)] * held,
                *[Metric("selection_spearman", self.agreement, stamp, 0)] * agree,
            ],
            params=[
                Param("best.criterion", self.criterion),
                Param("best.context_ratio", f"{b.context_ratio:g}"),
                Param("best.query_ratio", f"{b.query_ratio:g}"),
                Param("best.backbone", b.backbone),
            ],
        )


def _mean(values) -> float:
    return statistics.fmean(math.nan if v is None else v for v in values)


def summarize(
    trials: list[TrialRecord],
    *,
    mode: str,
    parent_run_id: str,
    experiment: str,
    seconds: float,
    criterion: str,
) -> SweepResult:
    """Mean metrics per configuration, ranked by ``criterion`` (``val_heldout_mse`` or
    ``val_mse``); a trial without the criterion, ``val_loss`` or ``test_mse`` is not ranked."""
    if criterion not in ("val_heldout_mse", "val_mse"):
        raise ValueError(f"criterion must be 'val_heldout_mse' or 'val_mse', got {criterion!r}")
    groups: dict[tuple, list[TrialRecord]] = {}
    for t in trials:
        needed = (t.val_loss, getattr(t, criterion), t.test_mse)
        if t.status == "FINISHED" and None not in needed:
            groups.setdefault((t.context_ratio, t.query_ratio, t.backbone), []).append(t)
    configs = [
        ConfigSummary(
            context_ratio=c,
            query_ratio=q,
            backbone=b,
            n=len(ts),
            val_loss=statistics.fmean(t.val_loss for t in ts),
            val_mse=_mean(t.val_mse for t in ts),
            test_mse=statistics.fmean(t.test_mse for t in ts),
            test_mse_unobserved=_mean(t.test_mse_unobserved for t in ts),
            val_heldout_mse=_mean(t.val_heldout_mse for t in ts),
        )
        for (c, q, b), ts in groups.items()
    ]
    configs.sort(key=lambda c: getattr(c, criterion))
    return SweepResult(experiment, parent_run_id, mode, trials, configs, seconds, criterion)


def ratio_heatmap(configs: list[ConfigSummary], axes: dict[str, list]) -> Figure:
    """val_loss, val_mse and test_mse over the (context ratio × query ratio) grid, one row per backbone.

    Cells without an evaluated trial are blank; each cell is annotated with its value.
    """
    ctx = sorted(set(axes["context_ratio"]))
    qry = sorted(set(axes["query_ratio"]))
    backbones = list(dict.fromkeys(axes["backbone"]))
    metrics = ("val_loss", "val_mse", "val_heldout_mse", "test_mse")
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
    fig.suptitle("sweep: mean over seeds of evaluated trials")
    return fig
