"""The complete-data oracle: its store keeps the complete training fields (and is otherwise the
same data set), its objective queries every point, and only a method that asks for it gets it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import free_field

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.store import normalization, open_split
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.denoiser import Denoiser
from incdyn.models.objective import complete_data_loss, data_matching_loss
from incdyn.models.partition import Partition
from incdyn.models.schedule import VPSchedule
from incdyn.platform.spec import parse_spec
from incdyn.platform.train.driver import run_name


def _config(train_truth: bool) -> dict:
    return store_config(
        source="navier_stokes",
        preset="quickstart",
        params={"grid": 16, "frames": 4},
        sizes={"train": 8, "val": 4, "test": 4},
        chunk=4,
        family=MaskFamily(kind="pixel", p=0.3, static=True),
        seed=3,
        train_truth=train_truth,
    )


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("oracle")
    plain, oracle = str(root / "plain.zarr"), str(root / "oracle.zarr")
    build_store(plain, _config(False), progress=False, use_ray=False)
    build_store(oracle, _config(True), progress=False, use_ray=False)
    return plain, oracle


def test_oracle_store_is_the_same_data_set_plus_complete_training_fields(stores):
    plain, oracle = stores
    assert "truth" not in open_split(plain, "train")
    train = open_split(oracle, "train", ["truth"])
    for split in ("train", "val", "test"):
        a, b = open_split(plain, split), open_split(oracle, split)
        for name in ("field", "mask"):
            xr.testing.assert_identical(a[name], b[name])
    for split in ("val", "test"):
        xr.testing.assert_identical(
            open_split(plain, split)["truth"], open_split(oracle, split)["truth"]
        )
    for x, y in zip(normalization(plain), normalization(oracle), strict=True):
        np.testing.assert_array_equal(x, y)  # from the observed training values in both
    truth, field, mask = train["truth"].values, train["field"].values, train["mask"].values
    assert np.isfinite(truth).all()  # every point of the training fields
    observed = np.broadcast_to(mask[:, :, None], field.shape)
    np.testing.assert_array_equal(truth[observed], field[observed])
    assert not np.allclose(truth[~observed], 0.0)


def test_training_truth_is_refused_where_the_store_has_none(stores):
    plain, oracle = stores
    with pytest.raises(ValueError, match="training_data: complete"):
        SplitDataset(plain, "train", with_truth=True)
    item = SplitDataset(oracle, "train", with_truth=True)[0]
    assert item["truth"].shape == item["x_obs"].shape


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.randn(2, 1, 3, 8, 8, generator=g)
    mask = torch.rand(2, 1, 8, 8, generator=g).expand(2, 3, 8, 8) < 0.3
    return truth, mask


def test_oracle_objective_scores_every_point_and_sees_only_the_context():
    truth, mask = _batch()
    net = free_field((1, 3, 8, 8))
    loss = complete_data_loss(
        Denoiser(net, VPSchedule()), truth, mask, Partition(), torch.Generator().manual_seed(1)
    )
    loss.backward()
    assert (net.theta.grad != 0).all()  # every point of the field is queried
    values, ctx = net.seen_input[:, :1], net.seen_input[:, 1:].bool().squeeze(1)
    assert not (ctx & ~mask).any()  # the context is drawn from the observation mask
    assert (values.squeeze(1)[~ctx] == 0).all()
    # the observed-data objective never scores an unobserved point (Theorem 1)
    net2 = free_field((1, 3, 8, 8))
    x_obs = truth * mask[:, None]
    data_matching_loss(
        Denoiser(net2, VPSchedule()), x_obs, mask, Partition(), torch.Generator().manual_seed(1)
    ).backward()
    never = ~mask.any(dim=0)
    assert (net2.theta.grad[:, never] == 0).all()


def test_oracle_loss_depends_on_unobserved_values():
    truth, mask = _batch(2)
    den = Denoiser(free_field((1, 3, 8, 8)), VPSchedule())
    changed = torch.where(mask[:, None], truth, truth + 1.0)
    a, b = (
        complete_data_loss(den, t, mask, Partition(), torch.Generator().manual_seed(4))
        for t in (truth, changed)
    )
    assert not torch.isclose(a, b)


def _spec(training_data: str):
    return parse_spec(
        {
            "name": "oracle-test",
            "methods": [
                {"name": "m", "partition": {"context_ratio": 0.7}, "training_data": training_data}
            ],
        },
        "test",
    )


def test_oracle_trains_its_own_run():
    observed, complete = _spec("observed"), _spec("complete")
    assert run_name(observed, observed.methods[0]) != run_name(complete, complete.methods[0])
    with pytest.raises(ValueError, match="training_data"):
        _spec("truth")
