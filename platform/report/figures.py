"""Comparison figure of one test sample: truth / observed / imputed / error at a few frames."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def imputation_figure(
    truth: np.ndarray, mask: np.ndarray, imputed: np.ndarray, *, title: str, channel: int = 0
) -> Figure:
    """truth, imputed ``(T, C, H, W)``; mask bool ``(T, H, W)``."""
    t = truth.shape[0]
    frames = sorted({0, t // 2, t - 1})
    observed = np.where(mask, truth[:, channel], np.nan)
    rows = [
        ("truth", truth[:, channel]),
        ("observed", observed),
        ("imputed", imputed[:, channel]),
        ("error", imputed[:, channel] - truth[:, channel]),
    ]
    lo, hi = float(np.nanmin(truth[:, channel])), float(np.nanmax(truth[:, channel]))
    fig = Figure(figsize=(2.4 * len(frames) + 1, 9))
    axes = fig.subplots(len(rows), len(frames), squeeze=False)
    for r, (name, data) in enumerate(rows):
        for c, f in enumerate(frames):
            ax = axes[r][c]
            if name == "error":
                span = max(abs(lo), abs(hi))
                im = ax.imshow(data[f], cmap="RdBu_r", vmin=-span, vmax=span, origin="lower")
            else:
                im = ax.imshow(data[f], cmap="viridis", vmin=lo, vmax=hi, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name)
            if r == 0:
                ax.set_title(f"frame {f}")
        fig.colorbar(im, ax=axes[r].tolist(), shrink=0.8)
    fig.suptitle(title)
    return fig
