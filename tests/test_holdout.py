"""Held-out observed points: their structure, the store, the score, and the choices made on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.holdout import HoldoutSpec, holdout_mask
from incdyn.datasets.masks import MaskFamily, block_index, sample_masks
from incdyn.datasets.metrics.heldout import HeldoutError
from incdyn.datasets.store import open_split
from incdyn.models.baselines.classical import impute_batch
from incdyn.platform.evaluation import evaluate
from incdyn.platform.spec import SpecError, parse_spec
from incdyn.platform.sweep.summary import TrialRecord, summarize

FAMILY = MaskFamily(kind="pixel", p=0.4)


def _mask(family: MaskFamily, *, frames=4, h=24, w=24, seed=0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return sample_masks(family, 1, frames, h, w, g)[0].numpy()


def _held(mask, family, fraction=0.2, seed=0):
    return holdout_mask(mask, family, HoldoutSpec(fraction=fraction), np.random.default_rng(seed))


def test_pixel_holdout_is_a_static_seeded_fraction_of_observed_points():
    mask = _mask(FAMILY)
    held = _held(mask, FAMILY)
    assert not (held & ~mask).any() and (held == held[:1]).all()  # subset; static as the mask
    assert held[0].sum() == round(0.2 * mask[0].sum())
    assert (held == _held(mask, FAMILY)).all() and not (held == _held(mask, FAMILY, seed=1)).all()


def test_block_holdout_withholds_whole_observed_tiles():
    family = MaskFamily(kind="block", k=7, blocks=3)
    mask = _mask(family)
    held = _held(mask, family, fraction=0.3)[0]
    tiles = block_index(24, 24, 3).numpy()
    for tile in range(9):
        inside = held[tiles == tile]
        assert inside.all() or not inside.any()
    assert held.sum() == 2 * (24 // 3) ** 2  # round(0.3 * 7) = 2 tiles


def test_station_holdout_withholds_whole_stations():
    family = MaskFamily(kind="station", stations=6, radius=2.0)
    mask = _mask(family)
    held = _held(mask, family, fraction=0.4)[0]
    labels, n = ndimage.label(mask[0])
    for station in range(1, n + 1):
        inside = held[labels == station]
        assert inside.all() or not inside.any()
    assert held.any() and (mask[0] & ~held).any()  # some withheld, never all


def test_real_gap_holdout_is_clumped_patches_per_frame():
    rng = np.random.default_rng(3)
    mask = rng.random((3, 32, 32)) < 0.7  # gaps that move from frame to frame
    held = _held(mask, None, fraction=0.25)
    assert not (held & ~mask).any() and held.any()
    # clumped: held-out points sit in 4×4 patches, so most have a held-out neighbour
    neighbours = ndimage.convolve(held[0].astype(int), np.ones((3, 3), int), mode="constant")
    assert (neighbours[held[0]] > 1).mean() > 0.8


def test_heldout_error_is_the_mean_square_at_held_out_points_in_std_units():
    imputed = np.zeros((1, 1, 2, 2, 2), np.float32)
    observed = np.full((1, 1, 2, 2, 2), np.nan, np.float32)
    observed[0, 0, :, 0, 0] = [2.0, 4.0]  # one held-out point, two channels
    holdout = np.zeros((1, 1, 2, 2), bool)
    holdout[0, 0, 0, 0] = True
    acc = HeldoutError(("a", "b"))
    acc.update(imputed, observed, holdout, np.array([1.0, 2.0]))
    out = acc.result()
    assert out["test_heldout_mse"] == pytest.approx((4.0 + 4.0) / 2)
    assert out["test_heldout_mse_a"] == pytest.approx(4.0)
    assert math.isnan(HeldoutError(("a",)).result()["test_heldout_mse"])


def _config(holdout):
    return store_config(
        source="navier_stokes",
        preset="quickstart",
        params={"grid": 16, "frames": 4},
        sizes={"train": 4, "val": 4, "test": 4},
        chunk=4,
        family=FAMILY,
        seed=0,
        holdout=holdout,
    )


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("holdout")
    plain, held = str(root / "plain.zarr"), str(root / "held.zarr")
    build_store(plain, _config(None), progress=False, use_ray=False)
    build_store(held, _config(HoldoutSpec(fraction=0.2)), progress=False, use_ray=False)
    return plain, held


def test_store_keeps_every_observation_and_adds_holdout_to_val_and_test(stores):
    plain, held = stores
    assert "holdout" not in open_split(plain, "val") and "holdout" not in open_split(held, "train")
    for split in ("val", "test"):
        a, b = open_split(plain, split), open_split(held, split)
        np.testing.assert_array_equal(a["field"].values, b["field"].values)  # inputs unchanged
        np.testing.assert_array_equal(a["mask"].values, b["mask"].values)
        h, m = b["holdout"].values, b["mask"].values
        assert h.any() and not (h & ~m).any()


def test_classical_baseline_scores_held_out_points_and_keeps_its_truth_scores(stores):
    plain, held = stores
    before = evaluate.evaluate_classical(
        "telea", store_url=plain, max_samples=None, source="navier_stokes"
    )
    after = evaluate.evaluate_classical(
        "telea", store_url=held, max_samples=None, source="navier_stokes"
    )
    assert after.metrics["test_mse"] == before.metrics["test_mse"]  # the user's imputation
    assert after.metrics["test_heldout_mse"] > 0 and after.metrics["val_heldout_mse"] > 0
    assert "test_heldout_mse" not in before.metrics


def _spec(**evaluation):
    return parse_spec(
        {
            "name": "h",
            "methods": [{"name": "m", "sampler": {"kind": "best"}}],
            "evaluation": {"figure": False, **evaluation},
        },
        "test spec",
    )


def test_selection_defaults_to_held_out_points_and_truth_only_when_asked():
    assert _spec(holdout={"fraction": 0.1}).evaluation.criterion == "val_heldout_mse"
    asked = _spec(holdout={"fraction": 0.1}, select_on="truth")
    assert asked.evaluation.criterion == "val_mse"
    default = _spec().evaluation  # held-out points are on by default: no truth is needed
    assert default.holdout.fraction == 0.1 and default.criterion == "val_heldout_mse"
    assert _spec(holdout=None).evaluation.criterion == "val_mse"  # none: nothing else to use
    with pytest.raises(SpecError, match=r"select_on: heldout needs evaluation\.holdout"):
        _spec(select_on="heldout", holdout=None)
    with pytest.raises(SpecError, match=r"evaluation\.holdout\.fraction"):
        _spec(holdout={"fraction": 0.9})


def _fake_impute(kind, denoiser, x, m, plan, *, generator, mu0=None):
    """``single`` fills the gaps with the mean (0 in normalised units), ``multi`` with Telea."""
    if kind == "single":
        return x * m[:, None], None
    values = np.moveaxis(x.numpy(), 1, 2).astype(np.float32)
    filled = impute_batch("telea", values, m.numpy())
    return torch.from_numpy(np.moveaxis(filled, 2, 1).copy()), None


@pytest.mark.parametrize("select_on", ["heldout", "truth"])
def test_best_sampler_is_chosen_on_the_spec_criterion(stores, monkeypatch, select_on):
    _, held = stores
    monkeypatch.setattr(evaluate, "load_denoiser", lambda *a: (None, {}))
    monkeypatch.setattr(evaluate, "impute", _fake_impute)
    # no network here (the samplers are faked): the verification pass, which needs one, is off
    spec = _spec(holdout={"fraction": 0.2}, select_on=select_on, verification={"enabled": False})
    m = evaluate.evaluate_diffusion("unused", spec, spec.methods[0], store_url=held).metrics
    # a smooth field: inpainting beats the mean on the truth and on held-out points alike
    assert m["val_mse_multi"] < m["val_mse_single"]
    assert m["val_heldout_mse_multi"] < m["val_heldout_mse_single"]
    assert m["sampler_used"] == 1.0 and m["val_heldout_mse"] == m["val_heldout_mse_multi"]
    assert {"test_mse", "test_heldout_mse", "val_mse"} <= set(m)


def _trial(ctx, seed, val_mse, heldout):
    return TrialRecord(f"r{ctx}-{seed}", "FINISHED", ctx, 0.7, "unet", seed, 1.0, val_mse, 0.1,
                       None, heldout)  # fmt: skip


def test_sweep_chooses_on_held_out_points_and_reports_their_agreement_with_truth():
    trials = [_trial(c, s, val_mse=c / 10 + s / 100, heldout=c / 5) for c in (0.3, 0.5, 0.9)
              for s in (0, 1)]  # fmt: skip
    result = summarize(trials, mode="grid", parent_run_id="p", experiment="e", seconds=1.0,
                       criterion="val_heldout_mse")  # fmt: skip
    assert result.best.context_ratio == 0.3 and result.agreement == pytest.approx(1.0)
    text = result.describe()
    assert "lowest mean val_heldout_mse" in text and "Spearman rho = 1.000" in text


def test_sweep_chooses_on_truth_when_the_spec_asks_for_it():
    # the two criteria disagree: held-out points favour 0.9, the truth 0.3
    trials = [_trial(0.3, 0, val_mse=0.1, heldout=0.5), _trial(0.9, 0, val_mse=0.2, heldout=0.4)]
    kw = dict(mode="grid", parent_run_id="p", experiment="e", seconds=1.0)
    assert summarize(trials, criterion="val_heldout_mse", **kw).best.context_ratio == 0.9
    truth = summarize(trials, criterion="val_mse", **kw)
    assert truth.best.context_ratio == 0.3 and "lowest mean val_mse" in truth.describe()
