"""One test frame per method of a real-record experiment: truth, observed, fill, error (the
first test sample's first frame, seed 0, as each method run logged it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from incdyn.platform.tracking import read_example


def draw_record(client, records, experiment: str, path: Path) -> None:
    """Write ``path`` (PNG): a row per method of ``experiment``'s finished seed-0 method runs."""
    runs = {}
    for r in sorted(records, key=lambda r: r.start_time):
        seed = r.tags.get("incdyn.seed", r.params.get("seed"))
        if (r.experiment, r.role, r.status, seed) == (experiment, "method", "FINISHED", "0"):
            runs[r.tags.get("incdyn.method") or r.params.get("method.name")] = r.run_id
    examples = {m: ex for m, rid in runs.items() if (ex := read_example(client, rid)) is not None}
    if not examples:
        return
    fig, axes = plt.subplots(len(examples), 4, figsize=(10, 2.3 * len(examples)), squeeze=False)
    first = next(iter(examples.values()))
    truth0 = first["truth"][0, 0]
    lo, hi = np.nanpercentile(truth0, [1, 99])
    for row, (method, ex) in zip(axes, examples.items(), strict=True):
        truth, mask, fill = ex["truth"][0, 0], ex["mask"][0].astype(bool), ex["imputed"][0, 0]
        panels = [truth, np.where(mask, truth, np.nan), fill, np.abs(fill - truth)]
        titles = ["truth", "observed", f"{method}: fill", "|error|"]
        for ax, img, title in zip(row, panels, titles, strict=True):
            cmap, vmin, vmax = (
                ("magma", 0, (hi - lo) / 4) if title == "|error|" else ("viridis", lo, hi)
            )
            ax.imshow(img, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
