"""experiments/real/results.py: RESULTS.md from the exported CSVs alone — the best method on
truth and on held-out points (the oracle never judged), Spearman's ρ of the two rankings and the
RMSE in the record's units (sqrt(MSE) × the seed's standard deviation)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from incdyn.platform.report.records import RunRecord, write_records

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    spec = importlib.util.spec_from_file_location(
        "real_results", ROOT / "experiments/real/results.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# mean test MSE and held-out MSE per method; the oracle is lowest on both and must not be judged
TRUTH = {"ours": 0.20, "dincae": 0.10, "telea": 0.40, "temporal": 0.30, "oracle": 0.01}
HELD = {"ours": 0.25, "dincae": 0.30, "telea": 0.50, "temporal": 0.35, "oracle": 0.02}
STD = {0: 2.0, 1: 2.5, 2: 3.0}


def _records() -> list[RunRecord]:
    out = []
    for m in TRUTH:
        for seed in STD:
            bump = 0.01 * (seed - 1)  # the seeds differ, their mean is TRUTH / HELD
            metrics = {"test_mse": TRUTH[m] + bump, "test_heldout_mse": HELD[m] + bump}
            if m == "ours":
                metrics["test_calibrated_coverage_90"] = 0.88 + 0.01 * seed
            out.append(
                RunRecord(
                    "real_ncep_air", f"{m}{seed}", m, "FINISHED", 0, 1,
                    tags={"incdyn.role": "method", "incdyn.method": m, "incdyn.seed": str(seed)},
                    metrics=metrics,
                )
            )  # fmt: skip
    return out


def test_results_md_from_the_csvs(results, tmp_path):
    out = tmp_path / "RESULTS.md"
    write_records(_records(), tmp_path / "RESULTS_runs.csv")
    with (tmp_path / "RESULTS_norm.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["spec", "seed", "channel", "mean", "std"])
        w.writerows(["real_ncep_air", s, 0, 270.0, sd] for s, sd in STD.items())
    text = results.build(out)
    assert "**Best on truth** (lowest mean test MSE, oracle excluded): **dincae**" in text
    assert "**Best on held-out points** (lowest mean held-out MSE): **ours** — a different" in text
    judged = [m for m in TRUTH if m != "oracle"]
    rho = spearmanr([TRUTH[m] for m in judged], [HELD[m] for m in judged]).statistic
    assert f"Spearman ρ = {rho:.2f}." in text
    assert "Ours' calibrated 90 % coverage** (truth at the gaps): 89.0%." in text
    ours = next(line for line in text.splitlines() if line.startswith("| ours |"))
    rmse = [np.sqrt(TRUTH["ours"] + 0.01 * (s - 1)) * sd for s, sd in STD.items()]
    assert f"{np.mean(rmse):.3f} ± {np.std(rmse):.3f}" in ours
    assert "| oracle (reference, not judged) |" in text
    assert "test RMSE (K)" in text
