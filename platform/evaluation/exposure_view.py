"""The exposure audit shown to people: a three-line summary and the exposure maps."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from incdyn.models.exposure import ExposureReport


def exposure_summary(report: ExposureReport) -> str:
    """The audit of one method in three lines: families, exposure statistics and the verdict."""
    f, p = report.family, report.partition
    fam = f.describe()
    if p.kind == "pixel":
        part = f"pixel r_ctx={p.context_ratio} r_qry={p.query_ratio}"
    elif p.kind == "cloud":
        part = f"cloud r_ctx={p.context_ratio}" + (" query_all" if p.query_all else "")
    else:
        drop = p.drop_stations if p.kind == "station" else p.drop_blocks
        part = f"{p.kind} drop={drop}" + (" query_all" if p.query_all else "")
    verdict = (
        f"ZERO EXPOSURE at {report.zero_fraction:.1%} of points "
        f"({report.zero_mass:.1%} of context/point pairs)"
        if report.has_zero_exposure
        else "every point outside the context is queried with positive probability"
    )
    mean = float(report.mean_map[~report.mean_map.isnan()].mean())
    noise = (
        f"\n  sampling noise alone gives cv {report.noise_cv:.3g}; min and zeros rest on "
        f"{report.coverage:.0%} of the draws"
        if report.method == "mc"
        else ""
    )
    return (
        f"exposure audit ({report.method}, {report.samples} samples): {fam} masks, {part} "
        f"partition\n  min {report.minimum:.4g}  mean {mean:.4g}  spread (max/min of mean) "
        f"{report.spread:.3g}  cv {report.variation:.3g}{noise}\n  {verdict}"
    )


def exposure_figure(report: ExposureReport) -> Figure:
    """The per-point minimum and mean exposure maps and the share of contexts that leave
    each point unqueried, side by side."""
    fig = Figure(figsize=(12.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    top = max(float(np.nanmax(report.mean_map.numpy())), 1e-6)
    for ax, data, title in (
        (axes[0], report.min_map, "min over contexts"),
        (axes[1], report.mean_map, "mean over contexts"),
    ):
        image = ax.imshow(data.numpy(), vmin=0.0, vmax=top, cmap="viridis", origin="lower")
        ax.set_title(f"P(i ∈ qry | ctx): {title}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8)
    image = axes[2].imshow(
        report.zero_rate_map.numpy(), vmin=0.0, vmax=1.0, cmap="magma", origin="lower"
    )
    axes[2].set_title("share of contexts with zero exposure", fontsize=9)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    fig.colorbar(image, ax=axes[2], shrink=0.8)
    if report.has_zero_exposure:  # never-queried points in red on the minimum map
        zero = np.ma.masked_where(~report.zero_map.numpy(), np.ones(report.zero_map.shape))
        axes[0].imshow(zero, cmap=ListedColormap(["red"]), alpha=0.6, origin="lower")
        axes[0].set_xlabel(f"red: zero exposure ({report.zero_fraction:.0%} of points)")
    fig.suptitle(exposure_summary(report).splitlines()[0], fontsize=8)
    return fig
