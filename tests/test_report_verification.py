"""`incdyn report`'s verification section: the runs' scores averaged over seeds, every method's
error-vs-K curve in one figure and the rank histograms, from MLflow alone."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from incdyn.platform.evaluation.verification import Verification, log_verification
from incdyn.platform.report.verification import build_verification
from incdyn.platform.tracking import log_evaluation

SETTING = "navier_stokes pixel 20%"


def test_section_averages_seeds_and_draws_the_curves(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("verify-report", artifact_location=str(tmp_path / "art"))
    tags = {"incdyn.role": "experiment", "incdyn.spec_name": "s", "incdyn.setting": SETTING}
    parent = client.create_run(exp, tags=tags).info.run_id
    for method, k in (("ours", 10), ("missdiff", 1)):
        for seed, ssr in ((0, 0.5), (1, 0.7)):
            run = client.create_run(exp, tags={
                "incdyn.role": "method", "incdyn.method": method, "incdyn.setting": SETTING,
                "incdyn.seed": str(seed), "mlflow.parentRunId": parent,
            }).info.run_id  # fmt: skip
            curve = {1: 1.0 + seed, 2: 0.75 + seed, 10: 0.55 + seed}
            ver = Verification(metrics={"test_spread_skill": ssr, "test_mse_k1": curve[1],
                                        "test_mse_k2": curve[2], "test_mse_k10": curve[10]},
                               ranks={"test": [3] * (k + 1)}, k_curve=curve, fit=(0.5, 0.5))  # fmt: skip
            log_evaluation(client, run, ver.metrics)
            log_verification(client, run, ver, title=method)
            client.set_terminated(run, "FINISHED")
    client.set_terminated(parent, "FINISHED")
    report = build_verification("verify-report", uri)
    assert report.rows == [("ours", SETTING), ("missdiff", SETTING)]
    assert report.metrics[("ours", SETTING)]["test_spread_skill"] == 0.6  # mean over seeds
    curve, _ = report.curves["ours"]
    assert curve == {1: 1.5, 2: 1.25, 10: 1.05}
    assert report.ranks["missdiff"] == [3, 3]  # the first seed's counts, K + 1 bins
    assert "0.600" in report.to_markdown()
    assert len(report.k_figure("t").axes[0].lines) == 2  # both methods in one figure
    assert len(report.rank_figure("t").axes) == 2
    assert "figures/error_vs_k.png" in {a.path for a in client.list_artifacts(run, "figures")}
