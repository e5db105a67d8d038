"""The DINCAE-style baseline (Barth et al. 2020, 2022): it learns a known noise variance, it runs
in ``incdyn run`` with the common and the probabilistic metrics, and its spec is validated."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scoringrules
import torch
from conftest import tiny_spec
from mlflow.tracking import MlflowClient
from scipy.stats import norm

from incdyn.datasets.metrics.gaussian_scores import GaussianScores
from incdyn.models.baselines.dincae import (
    build_dincae,
    dincae_impute,
    dincae_loss,
    gaussian_nll,
    transplant_mask,
)
from incdyn.platform.spec import DincaeMethod, SpecError, parse_spec

SIGMA = 0.3  # the toy's noise standard deviation (normalised units)
BACKBONE = {"width": 16, "mults": (1, 2), "blocks_per_level": 1, "padding_mode": "circular"}


def _toy(g: torch.Generator, n: int, size: int = 16) -> tuple[torch.Tensor, ...]:
    """A smooth field of random phase and amplitude, the same plus N(0, SIGMA²) noise, and a
    mask observing 60 % of the points: ``(n, 1, 1, H, W)``, ``(n, 1, 1, H, W)``, ``(n, 1, H, W)``."""
    yy, xx = torch.meshgrid(torch.arange(size) / size, torch.arange(size) / size, indexing="ij")
    phase = torch.rand(n, 1, 1, 1, 1, generator=g) * 2 * math.pi
    amp = 1 + torch.rand(n, 1, 1, 1, 1, generator=g)
    smooth = amp * torch.sin(2 * math.pi * xx + phase) * torch.cos(2 * math.pi * yy)
    noisy = smooth + SIGMA * torch.randn(smooth.shape, generator=g)
    mask = torch.rand(n, 1, size, size, generator=g) < 0.6
    return smooth, torch.where(mask[:, None], noisy, 0.0), mask


def test_learns_the_noise_variance_of_a_toy_field():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        model = build_dincae(BACKBONE, channels=1, frames=1, seed=0)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(250):
            _, x, m = _toy(g, 8)
            loss = dincae_loss(model, x, m, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        gt = torch.Generator().manual_seed(1)
        smooth, x, m = _toy(gt, 32)
        held = m & (torch.rand(m.shape, generator=gt) < 0.3)  # observed, hidden from the input
        mean, var = dincae_impute(model, x * ~held[:, None], m & ~held)
    finally:
        torch.set_num_threads(threads)
    at = held[:, None]
    # the best predictive variance at a hidden noisy point is σ² plus the mean's own error,
    # which is small for a smooth field: the learned variance is σ² within 30 %
    assert abs(float(var[at].mean()) - SIGMA**2) < 0.3 * SIGMA**2
    mse, zero = float(((mean - x)[at] ** 2).mean()), float((x[at] ** 2).mean())
    assert mse < 0.5 * zero  # its mean is far better than predicting 0
    assert float(((mean - smooth)[at] ** 2).mean()) < SIGMA**2  # it denoises the hidden points


def test_network_starts_at_mean_zero_and_unit_variance_with_observations_kept():
    # the UNet's output gain starts at 0: μ = 0 and log σ² = 0, the prior of normalised data
    net = build_dincae(BACKBONE, channels=2, frames=3, seed=0)
    g = torch.Generator().manual_seed(0)
    x, m = torch.randn(2, 2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g) < 0.5
    imputed, var = dincae_impute(net, x, m)
    assert imputed.shape == var.shape == x.shape
    assert torch.equal(imputed, torch.where(m[:, None], x, 0.0))
    assert torch.equal(var, torch.ones_like(var))


def test_transplant_hides_the_gaps_of_another_sample():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(4, 2, 5, 5, generator=g) < 0.7
    shown = transplant_mask(mask, g)
    assert not (shown & ~mask).any()  # never shows an unobserved point
    donors = [mask & mask.roll(s, 0) for s in (1, 2, 3)]
    assert any(torch.equal(shown, d) for d in donors)  # another sample's gaps, whole
    one = mask[:1]
    assert torch.equal(transplant_mask(one, g), one & one.roll(1, 1))  # one sample: frames
    assert torch.equal(transplant_mask(one[:, :1], g), one[:, :1])  # nothing to transplant


def test_gaussian_nll_is_the_normal_log_density():
    g = torch.Generator().manual_seed(0)
    mean, target = torch.randn(2, 1, 1, 3, 3, generator=g), torch.randn(2, 1, 1, 3, 3, generator=g)
    logvar = torch.randn(2, 1, 1, 3, 3, generator=g) * 0.5
    points = torch.rand(2, 1, 3, 3, generator=g) < 0.5
    target = torch.where(points[:, None], target, torch.nan)  # NaN where unobserved
    sel = points[:, None]
    want = -norm.logpdf(target[sel], mean[sel], np.exp(0.5 * logvar[sel].numpy())).mean()
    assert float(gaussian_nll(mean, logvar, target, points)) == pytest.approx(want, rel=1e-5)


def test_gaussian_scores_match_the_closed_forms():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(2, 1, 1, 4, 4))
    mean, var = np.zeros_like(target), np.full(target.shape, 4.0)
    points = np.ones((2, 1, 4, 4), bool)
    acc = GaussianScores(("u",))
    acc.update(mean, var, target, points, calibration={0.5: np.array([1.0]), 0.9: np.array([2.0])})
    out = acc.result("test")
    y = target.ravel()
    assert out["test_crps"] == pytest.approx(scoringrules.crps_normal(y, 0.0, 2.0).mean())
    assert out["test_coverage_90"] == pytest.approx(np.mean(np.abs(y) <= 1.6449 * 2.0))
    assert out["test_calibrated_coverage_90"] == pytest.approx(np.mean(np.abs(y) <= 4.0))
    assert out["test_spread_skill"] == pytest.approx(2.0 / np.sqrt(np.mean(y**2)))


def test_dincae_spec_refuses_unknown_keys_and_non_unet_backbones():
    spec = parse_spec({"name": "x", "methods": [{"kind": "dincae", "name": "d"}]}, "t")
    assert isinstance(spec.methods[0], DincaeMethod)
    assert spec.backbone_of(spec.methods[0]) == spec.backbone
    with pytest.raises(SpecError, match=r"methods\.0\.ratio: unknown key; allowed keys here: "):
        parse_spec({"name": "x", "methods": [{"kind": "dincae", "name": "d", "ratio": 1}]}, "t")
    with pytest.raises(SpecError, match="needs a UNet backbone"):
        bad = {
            "name": "x",
            "backbone": {"name": "fno"},
            "methods": [{"kind": "dincae", "name": "d"}],
        }
        parse_spec(bad, "t")
    with pytest.raises(SpecError, match="'dincae'"):
        parse_spec({"name": "x", "methods": [{"kind": "dincea", "name": "d"}]}, "t")


def test_incdyn_run_trains_and_scores_a_dincae_method(tmp_path, ray_local, monkeypatch):
    from incdyn.platform.experiment.run import run_experiment
    from incdyn.platform.tracking import TAG_METHOD

    methods = [{"kind": "dincae", "name": "dincae"}, {"kind": "telea", "name": "telea"}]
    raw = tiny_spec(tmp=tmp_path, methods=methods, steps=4, log_every=2, checkpoint_every=2)
    raw["evaluation"] = {"figure": False, "holdout": {"fraction": 0.3}}
    spec = parse_spec(raw, "test")
    rows = run_experiment(spec, progress=False, verbose=False)
    assert [r["method"] for r in rows] == ["dincae", "telea"]
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment_name)
    run = client.search_runs([exp.experiment_id], f"tags.`{TAG_METHOD}` = 'dincae'")[0]
    m = run.data.metrics
    assert run.info.status == "FINISHED"
    for key in ("test_mse", "test_mse_unobserved", "test_heldout_mse", "val_heldout_mse",
                "val_mse", "test_crps", "test_coverage_90", "test_coverage_90_heldout",
                "test_calibrated_coverage_90_heldout"):  # fmt: skip
        assert key in m and math.isfinite(m[key]), key
    assert 0.0 <= m["test_coverage_90"] <= 1.0
    assert m["test_crps"] > 0
    telea = next(r for r in rows if r["method"] == "telea")
    assert set(telea) - {"seconds"} <= set(m) | {"method", "kind", "seed", "setting"}
    curves = client.get_metric_history(run.info.run_id, "val_nll")
    assert [c.step for c in curves] == [2, 4]  # logged at every log_every step
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
    assert {"checkpoint/model.pt", "checkpoint/meta.json"} <= artifacts
    # a rerun finds the finished training on disk and does not fit again
    from incdyn.platform.checkpoint import read_meta
    from incdyn.platform.train import dincae_fit

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished training was fitted again")

    monkeypatch.setattr(dincae_fit, "TorchTrainer", no_fit)
    checkpoint, _ = dincae_fit.train_dincae(
        spec, spec.methods[0], store_url=spec.store_url, tracking_uri="", run_id=None
    )
    with checkpoint.as_directory() as d:
        assert read_meta(d)["step"] == spec.training.steps
