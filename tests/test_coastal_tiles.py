"""Coastal tiles of a large grid: tiles partly on land are samples with their own domain
(``domain (sample, y, x)`` in the store); land is never observed, never imputed, never scored,
and a spec that leaves ``tiles`` alone builds the store it built before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.generators import make_config
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.sources.xarray_source import generate, n_samples, split_windows
from incdyn.datasets.store import SPLITS, normalization, open_split, store_attrs
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.baselines.classical import impute_batch
from incdyn.platform.evaluation.evaluate import evaluate_classical

FRAMES, LAT, LON, P = 40, 12, 16, 4  # a 3 × 4 grid of 4 × 4 tiles
SIZES = {"train": 20, "val": 10, "test": 10}
FAMILY = MaskFamily(kind="cloud", p=0.6, scale=2.0, static=False)


def sea() -> np.ndarray:
    """bool ``(lat, lon)``: True at sea. Tile (0, 0) is half land, tile (0, 4) has one land
    point, tile (4, 12) is all land, tile (8, 8) is three quarters land; the rest is sea."""
    out = np.ones((LAT, LON), bool)
    out[0:2, 0:4] = False
    out[0, 4] = False
    out[4:8, 12:16] = False
    out[8:12, 9:12] = False
    return out


# the tiles kept by tiles: coastal at min_inside 0.5, row-major: all but the all-land (4, 12)
# and the mostly-land (8, 8); tiles: inside keeps only the wholly-sea ones
CORNERS = [(r, c) for r in (0, 4, 8) for c in (0, 4, 8, 12)]
COASTAL = [t for t in CORNERS if sea()[t[0] : t[0] + P, t[1] : t[1] + P].mean() >= 0.5]
INSIDE = [t for t in CORNERS if sea()[t[0] : t[0] + P, t[1] : t[1] + P].all()]


def coast_file(path) -> str:
    """A complete smooth 'sst' (t, lat, lon), NaN on land at every time."""
    t, lat, lon = np.arange(FRAMES), np.linspace(-10, 10, LAT), np.linspace(100, 130, LON)
    pattern = np.sin(lat[:, None] / 4 + lon[None, :] / 7)
    sst = 20 + pattern[None] * np.cos(t / 5)[:, None, None] + 0.3 * np.sin(t / 3)[:, None, None]
    sst[:, ~sea()] = np.nan
    ds = xr.Dataset(
        {"sst": (("t", "lat", "lon"), sst.astype(np.float32), {"units": "degC"})},
        coords={"t": t, "lat": lat, "lon": lon},
    )
    ds.to_netcdf(path)
    return str(path)


def params(url: str, **extra) -> dict:
    return {"url": url, "variables": ["sst"], "dims": ["t", "lat", "lon"], "window": 4,
            "stride": 2, "split": [0.5, 0.25, 0.25], "patch": P, **extra}  # fmt: skip


def config(url: str, sizes: dict = SIZES, **extra) -> dict:
    return store_config(source="xarray", preset="default", params=params(url, **extra),
                        sizes=sizes, chunk=4, family=FAMILY, seed=0)  # fmt: skip


@pytest.fixture(scope="module")
def coast(tmp_path_factory) -> tuple[str, str]:
    """The netCDF file and a store of its coastal tiles."""
    root = tmp_path_factory.mktemp("coast")
    url = coast_file(root / "coast.nc")
    store = str(root / "coast.zarr")
    assert build_store(store, config(url, tiles="coastal"), progress=False, use_ray=False) == (
        "generated"
    )
    return url, store


def test_the_land_design_has_coastal_tiles():
    assert len(COASTAL) == 10 and len(INSIDE) == 8 and set(INSIDE) < set(COASTAL)


def test_coastal_tiles_are_kept_with_their_own_domain(coast):
    url, _ = coast
    inside = make_config("xarray", "default", params(url))
    coastal = make_config("xarray", "default", params(url, tiles="coastal"))
    windows = n_samples(inside, "train") // len(INSIDE)
    assert n_samples(coastal, "train") == windows * len(COASTAL) > n_samples(inside, "train")
    strict = make_config("xarray", "default", params(url, tiles="coastal", min_inside=1.0))
    assert n_samples(strict, "train") == n_samples(inside, "train")
    sim = generate(coastal, len(COASTAL), torch.Generator(), split="train", start=0)
    assert sim.domain.shape == (len(COASTAL), P, P)
    for i, (r, c) in enumerate(COASTAL):
        np.testing.assert_array_equal(sim.domain[i], sea()[r : r + P, c : c + P])
        assert np.isnan(sim.fields[i, :, :, ~sim.domain[i]].numpy()).all()


def test_store_holds_each_samples_domain_and_never_observes_land(coast):
    _, store = coast
    for split in SPLITS:
        ds = open_split(store, split)
        assert ds["domain"].dims == ("sample", "y", "x")
        domain = ds["domain"].values
        for i in range(ds.sizes["sample"]):  # sample i is tile i % tiles of its window
            r, c = COASTAL[i % len(COASTAL)]
            np.testing.assert_array_equal(domain[i], sea()[r : r + P, c : c + P])
        land = ~domain[:, None]  # (sample, 1, y, x)
        mask = ds["mask"].values
        assert not (mask & land).any() and mask.any()
        assert np.isnan(ds["field"].values[:, :, 0][np.broadcast_to(land, mask.shape)]).all()
        if "truth" in ds:  # the truth inside the domain is complete, NaN on land
            truth = ds["truth"].values[:, :, 0]
            assert np.isfinite(truth[np.broadcast_to(~land, mask.shape)]).all()
            assert np.isnan(truth[np.broadcast_to(land, mask.shape)]).all()


def test_normalisation_and_training_data_see_no_land(coast):
    _, store = coast
    train = open_split(store, "train")
    values = train["field"].values[:, :, 0][train["mask"].values]
    mean, std = normalization(store)
    assert np.isfinite(values).all()
    np.testing.assert_allclose(mean[0], values.mean(), rtol=1e-5)
    np.testing.assert_allclose(std[0], values.std(), rtol=1e-4)
    data = SplitDataset(store, "train")
    item = data[0]
    assert torch.isfinite(item["x_obs"]).all() and item["mask"].shape == (4, P, P)


def test_classical_imputation_is_nan_on_land_and_scored_on_sea_only(coast):
    _, store = coast
    ev = evaluate_classical("telea", store_url=store, max_samples=None, source="xarray")
    test = open_split(store, "test")
    domain = test["domain"].values
    assert not domain[0].all()  # test sample 0 is the half-land tile (0, 0)
    assert np.isnan(ev.example_imputed[..., ~domain[0]]).all()
    assert np.isfinite(ev.example_imputed[..., domain[0]]).all()
    # by hand: squared normalised errors over the sea points of every test sample only
    values, mask = test["field"].values.astype(np.float32), test["mask"].values
    truth = test["truth"].values
    imputed = impute_batch("telea", values, mask)
    _, std = normalization(store)
    sea_points = np.broadcast_to(domain[:, None, None], truth.shape)
    err = ((imputed - truth) / std[0])[sea_points] ** 2
    np.testing.assert_allclose(ev.metrics["test_mse"], err.mean(), rtol=1e-5)
    hidden = sea_points & ~mask[:, :, None]
    expected_hidden = (((imputed - truth) / std[0])[hidden] ** 2).mean()
    np.testing.assert_allclose(ev.metrics["test_mse_unobserved"], expected_hidden, rtol=1e-5)


def test_a_suggestion_window_of_the_store_has_its_samples_domain(coast):
    from incdyn.platform.suggest.record import store_window

    _, store = coast
    domain = open_split(store, "test")["domain"].values
    for sample in (0, 1):
        window = store_window(store, "test", sample, None)
        np.testing.assert_array_equal(window.domain, domain[sample])
        assert not (window.mask & ~window.domain).any()


def test_squared_error_takes_a_domain_per_sample():
    """Two samples, each with its own inside point: only those are scored."""
    truth = np.zeros((2, 1, 1, 1, 2), np.float32)
    imputed = np.array([1.0, np.nan, np.nan, 3.0], np.float32).reshape(2, 1, 1, 1, 2)
    domain = np.array([[[True, False]], [[False, True]]])
    acc = SquaredError(("c",))
    acc.update(imputed, truth, np.zeros((2, 1, 1, 2), bool), np.ones(1), domain)
    assert acc.result()["test_mse"] == pytest.approx((1.0 + 9.0) / 2)


def test_the_default_keeps_the_store_of_before(tmp_path):
    from conftest import sea_surface_file

    url = sea_surface_file(tmp_path / "a.nc", gaps=False)
    cfg = config(url)
    old_keys = {"url", "variables", "dims", "window", "stride", "split", "gaps", "engine",
                "patch", "domain", "period", "frame_step", "coarsen", "level_dim", "ascending",
                "timeout_s", "storage_options"}  # fmt: skip
    assert set(cfg["generator"]) == old_keys  # the identity of a store built before
    assert config(url, tiles="inside", min_inside=0.5) == cfg
    assert config(url, tiles="coastal")["generator"]["tiles"] == "coastal"
    inside = make_config("xarray", "default", params(url))
    windows = len(split_windows(inside)["train"])
    assert n_samples(inside, "train") == windows * 11  # tile (0, 0) reaches onto land
    assert generate(inside, 11, torch.Generator(), split="train", start=0).domain is None
    whole, sizes = str(tmp_path / "whole.zarr"), {"train": 8, "val": 3, "test": 3}
    build_store(whole, config(url, sizes, patch=0), progress=False, use_ray=False)
    ds = open_split(whole, "test")
    assert ds["domain"].dims == ("y", "x") and not ds["domain"].values[:3, :4].any()
    assert store_attrs(whole)["incdyn_config"]["generator"].keys() == old_keys
    assert build_store(whole, config(url, sizes, patch=0), progress=False, use_ray=False) == (
        "reused"
    )


def test_dincae_scores_coastal_tiles_on_sea_only(coast):
    # the DINCAE-style baseline on a store with a per-sample domain: land NaN in what it
    # returns, each batch scored with its own samples' domain (an untrained network will do)
    from incdyn.models.baselines.dincae import build_dincae
    from incdyn.platform.evaluation.dincae_eval import _metrics, _score_split
    from incdyn.platform.spec import parse_spec

    url, store = coast
    spec = parse_spec({
        "name": "coast", "data": {"source": "xarray", "params": params(url, tiles="coastal")},
        "methods": [{"kind": "dincae", "name": "dincae"}],
        "backbone": {"name": "unet", "width": 8, "mults": [1, 2], "blocks_per_level": 1},
        "evaluation": {"batch_size": 4},
    })  # fmt: skip
    torch.manual_seed(0)
    net = build_dincae(spec.backbone_of(spec.methods[0]), channels=1, frames=4).eval()
    split = _score_split("test", net, spec, store_url=store, limit=None, device="cpu",
                         calibration=None)  # fmt: skip
    domain = open_split(store, "test")["domain"].values
    imputed = split.example[2]
    assert np.isnan(imputed[..., ~domain[0]]).all() and np.isfinite(imputed[..., domain[0]]).all()
    metrics = _metrics(split, "test")
    assert np.isfinite(metrics["test_mse"]) and np.isfinite(metrics["test_crps"])
