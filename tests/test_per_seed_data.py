"""data.per_seed: each run seed draws its own data set, in a store of its own."""

from __future__ import annotations

import numpy as np
from conftest import tiny_spec

from incdyn.datasets.store import open_split
from incdyn.platform.data_prep import ensure_data
from incdyn.platform.experiment.run import dry_run
from incdyn.platform.spec import parse_spec


def _spec(store: str, per_seed: bool, seed: int = 0):
    raw = tiny_spec(name="ps", store=store, seed=seed, seeds=[0, 1], tracking_uri=None)
    raw["data"]["per_seed"] = per_seed
    return parse_spec(raw)


def test_store_url_names_the_seed_only_with_per_seed():
    assert _spec("data/{name}.zarr", False, seed=3).store_url == "data/ps.zarr"
    assert _spec("data/{name}.zarr", True, seed=3).store_url == "data/ps-seed3.zarr"
    assert _spec("s3://b/{seed}/{name}.zarr", True, seed=3).store_url == "s3://b/3/ps.zarr"
    assert "data of seed 1: store" in dry_run(_spec("data/{name}.zarr", True))


def test_each_seed_draws_its_own_data_set_and_a_seed_draws_the_same_one_again():
    spec = _spec("memory://per-seed/{name}.zarr", True)
    urls = [ensure_data(spec.model_copy(update={"seed": s}), progress=False) for s in (0, 1)]
    assert urls[0] != urls[1]
    a, b = (open_split(u, "val") for u in urls)
    assert not np.allclose(a["truth"].values, b["truth"].values)  # other fields
    assert not (a["mask"].values == b["mask"].values).all()  # other masks
    again = _spec("memory://per-seed-again/{name}.zarr", True)
    url = ensure_data(again.model_copy(update={"seed": 1}), progress=False)
    np.testing.assert_array_equal(open_split(url, "val")["truth"].values, b["truth"].values)
