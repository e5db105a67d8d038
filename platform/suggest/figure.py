"""The map of a suggestion: the ensemble's spread at the frame, the observed points, and the
chosen units numbered in the order of their picks."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def suggestion_figure(
    spread: np.ndarray, mask: np.ndarray, picks: list[dict], title: str
) -> Figure:
    """``spread`` and ``mask`` ``(H, W)`` of the frame; ``picks`` as :class:`Suggestion` has them."""
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(spread, origin="lower", cmap="viridis")
    fig.colorbar(image, ax=ax, shrink=0.85, label="ensemble spread (training-std units)")
    ys, xs = np.nonzero(mask)
    ax.scatter(xs, ys, s=4, c="white", marker=".", linewidths=0, label="observed")
    for p in picks:
        if "y0" in p:  # a tile
            ax.add_patch(Rectangle((p["x0"] - 0.5, p["y0"] - 0.5), p["x1"] - p["x0"],
                                   p["y1"] - p["y0"], fill=False, ec="red", lw=1.5))  # fmt: skip
            y, x = (p["y0"] + p["y1"] - 1) / 2, (p["x0"] + p["x1"] - 1) / 2
        else:
            y, x = p["y"], p["x"]
            ax.scatter([x], [y], s=60, facecolors="none", edgecolors="red", linewidths=1.5)
        ax.annotate(str(p["rank"]), (x, y), color="red", fontsize=8, xytext=(4, 4),
                    textcoords="offset points")  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (grid index)")
    ax.set_ylabel("y (grid index)")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    return fig
