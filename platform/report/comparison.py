"""The methods compared on one parent run: test sample 0 by every method, and the test metrics.

Two figures from the method runs alone (their metrics and ``examples/test_sample0.npz``):

- the same test sample imputed by every method side by side — truth, observed, each method's
  imputation, and below it that method's error — at one frame;
- a bar chart per test metric: one bar per method, the mean over seeds, error bars ± one sample
  standard deviation, each seed a dot.

``incdyn run`` logs both to the parent run of each data setting; ``incdyn report`` logs them for
the runs it tabulates.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from incdyn.platform.tracking import (
    COMPARISON_FIGURE,
    METRICS_FIGURE,
    ROLE_METHOD,
    TAG_METHOD,
    TAG_PARENT,
    TAG_ROLE,
    TAG_SEED,
    read_example,
    search_all,
)

TEST_PREFIX = "test_"


def sample_figure(
    truth: np.ndarray,
    mask: np.ndarray,
    imputed: dict[str, np.ndarray],
    *,
    title: str,
    channel: int = 0,
    frame: int | None = None,
) -> Figure:
    """truth and each imputation ``(T, C, H, W)``, mask bool ``(T, H, W)``; ``imputed`` maps
    method → imputation, in column order. ``frame`` defaults to the middle one."""
    f = truth.shape[0] // 2 if frame is None else frame
    ref = truth[f, channel]
    lo, hi = float(np.nanmin(ref)), float(np.nanmax(ref))
    errors = {m: x[f, channel] - ref for m, x in imputed.items()}
    span = max((float(np.nanmax(np.abs(e))) for e in errors.values()), default=1.0) or 1.0
    cols = 2 + len(imputed)
    fig = Figure(figsize=(2.3 * cols + 1.2, 5.2), layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)
    unobserved = ~mask[f]
    panels = [("truth", ref), ("observed", np.where(mask[f], ref, np.nan))]
    panels += [(m, x[f, channel]) for m, x in imputed.items()]
    for c, (name, data) in enumerate(panels):
        im = axes[0][c].imshow(data, cmap="viridis", vmin=lo, vmax=hi, origin="lower")
        axes[0][c].set_title(name)
        if c >= 2:
            err = errors[name]
            mse = float(np.mean(err[unobserved] ** 2)) if unobserved.any() else float("nan")
            em = axes[1][c].imshow(err, cmap="RdBu_r", vmin=-span, vmax=span, origin="lower")
            axes[1][c].set_title(f"{name} error\nMSE unobs. {mse:.3g}", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[1][:2]:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="value")
    if imputed:
        fig.colorbar(em, ax=axes[1].tolist(), shrink=0.8, label="imputed − truth")
    fig.suptitle(f"{title}: test sample 0, frame {f}")
    return fig


def metrics_figure(values: dict[str, dict[str, list[float]]], *, title: str) -> Figure:
    """``values[metric][method]`` → the metric's values over seeds; one panel per metric."""
    metrics = list(values)
    fig = Figure(figsize=(max(4.0, 3.6 * len(metrics)), 3.8), layout="constrained")
    axes = fig.subplots(1, max(1, len(metrics)), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=False):
        methods = list(values[metric])
        x = np.arange(len(methods))
        means = [statistics.fmean(values[metric][m]) for m in methods]
        stds = [
            statistics.stdev(values[metric][m]) if len(values[metric][m]) > 1 else 0.0
            for m in methods
        ]
        colors = [f"C{i}" for i in range(len(methods))]
        ax.bar(x, means, 0.6, yerr=stds, capsize=4, color=colors, alpha=0.8)
        for i, m in enumerate(methods):
            ax.plot([i] * len(values[metric][m]), values[metric][m], "k.", markersize=5)
        ax.set_xticks(x, methods, rotation=20)
        ax.set_title(metric)
    fig.suptitle(f"{title}: mean ± std over seeds (dots: seeds)")
    return fig


def _seed_key(run: Run) -> tuple[int, str]:
    seed = run.data.tags.get(TAG_SEED, "")
    return (int(seed) if seed.lstrip("-").isdigit() else 1 << 30, run.info.run_id)


# Test metrics that are not one figure per method: the error-vs-K curve and its fit, the
# per-sampler readings of the verification pass (each has its own figure on the method's run).
_NOT_COMPARED = re.compile(r"^test_mse_k\d+$|_fit_|_(single|multi)$|^test_better_calibrated$")


def compared_metric(metric: str) -> bool:
    """A test metric compared across methods (in figures and in the UI's view)."""
    return metric.startswith(TEST_PREFIX) and not _NOT_COMPARED.search(metric)


def method_of(run: Run) -> str:
    return run.data.tags.get(TAG_METHOD, run.info.run_id)


def comparison_figures(
    client: MlflowClient,
    runs: Sequence[Run],
    *,
    title: str,
    label: Callable[[Run], str] = method_of,
) -> tuple[Figure | None, Figure | None]:
    """(sample figure, metrics figure) of ``runs``, one column or bar per ``label`` (default:
    the method); None where nothing is to be drawn. The sample figure shows, per label, the run
    of the lowest seed that logged its test sample 0."""
    ordered = sorted(runs, key=_seed_key)
    methods = list(dict.fromkeys(label(r) for r in runs))
    keys = sorted({k for r in runs for k in r.data.metrics if compared_metric(k)})
    values = {
        k: {
            m: [r.data.metrics[k] for r in ordered if label(r) == m and k in r.data.metrics]
            for m in methods
        }
        for k in keys
    }
    values = {k: {m: v for m, v in per.items() if v} for k, per in values.items()}
    bars = metrics_figure(values, title=title) if values else None
    truth = mask = None
    imputed: dict[str, np.ndarray] = {}
    for method in methods:
        for run in (r for r in ordered if label(r) == method):
            example = read_example(client, run.info.run_id)
            if example is not None:
                truth = example["truth"] if truth is None else truth
                mask = example["mask"] if mask is None else mask
                imputed[method] = example["imputed"]
                break
    sample = sample_figure(truth, mask, imputed, title=title) if imputed else None
    return sample, bars


def log_comparison(
    client: MlflowClient,
    parent_id: str,
    runs: Sequence[Run],
    *,
    title: str,
    paths: tuple[str, str] = (COMPARISON_FIGURE, METRICS_FIGURE),
    label: Callable[[Run], str] = method_of,
) -> list[str]:
    """Log the comparison of ``runs`` to ``parent_id`` at ``paths``; returns the paths logged."""
    logged = []
    figures = comparison_figures(client, runs, title=title, label=label)
    for figure, path in zip(figures, paths, strict=True):
        if figure is not None:
            client.log_figure(parent_id, figure, path)
            logged.append(path)
    return logged


def log_parent_comparison(client: MlflowClient, parent_id: str, *, title: str) -> list[str]:
    """Log the comparison of the FINISHED method runs under ``parent_id`` to that parent."""
    parent = client.get_run(parent_id)
    runs = search_all(
        client,
        parent.info.experiment_id,
        f"tags.`{TAG_PARENT}` = '{parent_id}' and tags.`{TAG_ROLE}` = '{ROLE_METHOD}' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    return log_comparison(client, parent_id, runs, title=title)
