"""The verification pass of a diffusion evaluation on a tiny store with held-out points: every
score is a number, the error falls with K as a + b/K (Theorem 2, b ≥ 0: the members' variance),
the calibration fitted on the validation split's held-out points covers the test split's
held-out points at the nominal rate, and the imputation's own numbers are unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.store import normalization, open_split
from incdyn.models.backbones.registry import build_denoiser
from incdyn.platform.checkpoint import save_checkpoint
from incdyn.platform.evaluation.evaluate import evaluate_diffusion
from incdyn.platform.evaluation.verification import fit_k_curve
from incdyn.platform.spec import ExperimentSpec

BACKBONE = {"name": "unet", "width": 8, "mults": [1, 2], "blocks_per_level": 1}


def tiny_spec(url: str, **verification) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "verify-test",
            "methods": [{"name": "ours", "ensemble": 4, "sampler": {"steps": 2}}],
            "backbone": BACKBONE,
            "data": {"store": url},
            "evaluation": {
                "batch_size": 4,
                "figure": False,
                "verification": {"ks": [1, 2, 4, 8], "draws": 2, "draw_samples": 4, **verification},
            },
        }
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    url = str(root / "ns.zarr")
    config = store_config(
        source="navier_stokes", preset="quickstart", params={"grid": 16, "frames": 4},
        sizes={"train": 4, "val": 8, "test": 8}, chunk=4,
        family=MaskFamily(kind="pixel", p=0.5), seed=0,
    )  # fmt: skip
    build_store(url, config, progress=False, use_ray=False)
    rng = np.random.default_rng(0)
    for split in ("val", "test"):  # held-out observed points, as held-out evaluation stores them
        mask = open_split(url, split)["mask"].values
        holdout = mask & (rng.random(mask.shape) < 0.3)
        xr.Dataset({"holdout": (("sample", "time", "y", "x"), holdout)}).to_zarr(
            url, group=split, mode="a", consolidated=False
        )
    spec = tiny_spec(url)
    ckpt = random_checkpoint(spec, url, root / "ckpt", "vorticity")
    ev = evaluate_diffusion(ckpt, spec, spec.methods[0], store_url=url)
    return url, ckpt, spec, ev


def random_checkpoint(spec: ExperimentSpec, url: str, path, channel: str):
    """A checkpoint of random weights, perturbed so that the members differ."""
    torch.manual_seed(0)
    model = build_denoiser(
        spec.to_dict()["backbone"], spec.to_dict()["schedule"], channels=1, frames=4
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    mean, std = normalization(url)
    meta = {"spec": spec.to_dict(), "method": spec.to_dict()["methods"][0], "channels": [channel],
            "frames": 4, "normalization": {"mean": mean.tolist(), "std": std.tolist()}, "step": 0}  # fmt: skip
    return save_checkpoint(path, model=model, optimizer=None, meta=meta)


NAMES = ["spread_skill", "crps", "coverage_50", "coverage_90"]


def test_every_score_is_a_number(setup):
    _, _, _, ev = setup
    m = ev.metrics
    want = [f"test_{n}{s}" for n in NAMES for s in ("", "_heldout", "_single", "_multi")]
    want += ["test_calibrated_coverage_90", "test_calibrated_coverage_90_heldout"]
    want += [f"test_mse_k{k}" for k in (1, 2, 4, 8)] + ["test_mse_k_fit_a", "test_mse_k_fit_b"]
    want += ["val_spread_skill_heldout", "test_better_calibrated"]
    missing = [k for k in want if k not in m]
    assert not missing
    assert all(math.isfinite(m[k]) for k in want)
    assert sum(ev.verification.ranks["test"]) > 0 and len(ev.verification.ranks["test"]) == 5


def test_error_falls_with_k_and_calibration_covers_heldout_points(setup):
    _, _, _, ev = setup
    m, v = ev.metrics, ev.verification
    assert m["test_mse_k8"] < m["test_mse_k1"]
    # the curve goes on past the method's own K = 4: members 5-8 are drawn, not the first 4 again
    assert m["test_mse_k8"] != m["test_mse_k4"]
    a, b = v.fit
    assert b > 0  # the members' variance, removed as 1/K
    for k, value in v.k_curve.items():
        assert value == pytest.approx(a + b / k, rel=0.05)
    assert v.calibration is not None and v.calibration.k == 4
    # split-conformal: val and test held-out points are alike, so the nominal level holds
    assert m["test_calibrated_coverage_90_heldout"] == pytest.approx(0.9, abs=0.06)
    assert m["test_calibrated_coverage_50_heldout"] == pytest.approx(0.5, abs=0.08)


def test_imputation_numbers_do_not_change(setup):
    url, ckpt, _, ev = setup
    off = tiny_spec(url, enabled=False)
    plain = evaluate_diffusion(ckpt, off, off.methods[0], store_url=url)
    assert plain.verification is None
    for key, value in plain.metrics.items():
        assert ev.metrics[key] == value


def test_k_curve_fit_recovers_a_plus_b_over_k():
    curve = {k: 0.3 + 1.2 / k for k in (1, 2, 5, 10)}
    a, b = fit_k_curve(curve)
    assert (a, b) == pytest.approx((0.3, 1.2))
    assert fit_k_curve({1: 1.0}) is None


@pytest.mark.parametrize(("kind", "members"), [("multi", 2), ("direct", 4)])
def test_multi_and_direct_methods_are_scored_on_their_own_members(setup, kind, members):
    from incdyn.platform.checkpoint import load_denoiser
    from incdyn.platform.evaluation.verification import verify_diffusion
    from incdyn.platform.sampling import sampler_plan

    url, ckpt, _, _ = setup
    spec = tiny_spec(url, ks=[1, 2], draw_samples=2)
    denoiser, _ = load_denoiser(ckpt)
    plan = sampler_plan(spec, spec.methods[0])
    v = verify_diffusion(denoiser, spec, plan, kind, store_url=url, limit=2, device="cpu")
    assert len(v.ranks["test"]) == members + 1
    assert math.isfinite(v.metrics["test_spread_skill_heldout"])
    assert v.calibration is not None and v.calibration.sampler == kind
    assert ("test_spread_skill_multi" in v.metrics) == (kind == "multi")


@pytest.mark.parametrize(
    ("gaps", "tiles"),
    [("benchmark", {}), ("real", {}), ("benchmark", {"patch": 6, "tiles": "coastal"})],
)
def test_land_outside_the_domain_is_never_scored(tmp_path, gaps, tiles):
    """A netCDF file with land (NaN at every time): every verification score is a number, on
    truth where the file is complete under cloud masks, on held-out points alone with real gaps;
    with coastal tiles each sample has its own domain and its land is NaN in the imputation."""
    from conftest import sea_surface_file

    from incdyn.datasets.holdout import HoldoutSpec

    url = str(tmp_path / "sst.zarr")
    params = {"url": sea_surface_file(tmp_path / "sst.nc", gaps=gaps == "real"),
              "variables": ["sst"], "dims": ["t", "lat", "lon"], "window": 4, "stride": 2,
              "split": [0.5, 0.25, 0.25], "gaps": gaps, **tiles}  # fmt: skip
    config = store_config(
        source="xarray", preset="default", params=params, sizes={"train": 4, "val": 4, "test": 4},
        chunk=4, family=MaskFamily(kind="cloud", p=0.6, scale=2.0, static=False), seed=0,
        holdout=HoldoutSpec(fraction=0.2, patch=3),
    )  # fmt: skip
    build_store(url, config, progress=False, use_ray=False)
    domain = open_split(url, "test")["domain"]
    spec = tiny_spec(url, ks=[1, 2, 4])
    ckpt = random_checkpoint(spec, url, tmp_path / "ckpt", "sst")
    ev = evaluate_diffusion(ckpt, spec, spec.methods[0], store_url=url)
    m = ev.metrics
    if tiles:  # test sample 0 is the tile (0, 0), a third of it land
        assert domain.dims == ("sample", "y", "x") and domain.values[1:].all()
        inside = domain.values[0]
        assert inside.mean() == pytest.approx(2 / 3) and not inside[:3, :4].any()
        assert np.isnan(ev.example_imputed[..., ~inside]).all()
        assert np.isfinite(ev.example_imputed[..., inside]).all()
    want = [f"test_{n}_heldout" for n in NAMES] + ["test_calibrated_coverage_90_heldout"]
    if gaps == "benchmark":
        want += [f"test_{n}" for n in NAMES] + ["test_calibrated_coverage_90", "test_mse_k4"]
    else:
        assert "test_crps" not in m  # no truth: nothing to score it on
    if (
        tiles
    ):  # four 6 × 6 tiles: too few held-out val points (~50) for the calibration's top levels
        want = [k for k in want if "calibrated" not in k]
    assert all(math.isfinite(m[k]) for k in want), {k: m.get(k) for k in want}
