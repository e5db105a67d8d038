"""Figures of ensemble verification: the rank histogram and the error against K (Theorem 2).

How to read them: a rank histogram counts where the truth falls among the K sorted members
(K + 1 bins); flat (the dashed line) means truth and members are exchangeable, a U shape means
the spread is too small, a dome too large, a slope a bias. The error-vs-K curve is the test MSE
of the K-member ensemble; Theorem 2 says it falls as ``a + b/K``: ``a`` (the dashed asymptote) is
the information gap plus the model's bias, ``b`` the context-dependent variance that averaging
over context masks removes.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def rank_histogram_figure(ranks: dict[str, list[int]], *, title: str) -> Figure:
    """One panel per scored set (``test``, ``test_heldout``, ...): relative frequency per rank."""
    fig = Figure(figsize=(4.2 * len(ranks), 3.4))
    axes = fig.subplots(1, len(ranks), squeeze=False)[0]
    for ax, (name, counts) in zip(axes, ranks.items(), strict=True):
        counts = np.asarray(counts, np.float64)
        freq = counts / max(counts.sum(), 1.0)
        ax.bar(np.arange(counts.size), freq, width=0.9, color="tab:blue")
        ax.axhline(1.0 / counts.size, color="k", ls="--", lw=1, label="calibrated")
        ax.set_xlabel(f"rank of the target among {counts.size - 1} members")
        ax.set_ylabel("relative frequency")
        ax.set_title(name)
        ax.legend(loc="upper center", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def k_curve_figure(
    curves: dict[str, tuple[dict[int, float], tuple[float, float] | None]], *, title: str
) -> Figure:
    """Test MSE against K for each label (a method), with its fit ``a + b/K`` dashed."""
    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    for i, (label, (curve, fit)) in enumerate(curves.items()):
        color = f"C{i % 10}"
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], "o-", color=color, label=label)
        if fit is not None:
            grid = np.geomspace(min(ks), max(ks), 64)
            a, b = fit
            ax.plot(grid, a + b / grid, "--", color=color, lw=1,
                    label=f"{label}: {a:.3g} + {b:.3g}/K")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("ensemble size K (context masks)")
    ax.set_ylabel("test MSE (training-std units)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
