"""Importer of the public Navier–Stokes .pt file, on a small file in that layout written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.sources.navier_stokes_public import PublicNavierStokesConfig, generate
from incdyn.datasets.store import StoreError


def _write(path, *, n: int = 10, t: int = 5, size: int = 16) -> torch.Tensor:
    w = torch.randn(n, t, size, size, generator=torch.Generator().manual_seed(0))
    torch.save({"vorticity": w}, path)
    return w


def test_store_from_the_file_splits_disjointly_and_keeps_values(tmp_path):
    w = _write(tmp_path / "ns.pt")
    cfg = store_config(
        source="navier_stokes_public",
        preset="paper",
        params={"path": str(tmp_path / "ns.pt"), "frames": 4},
        sizes={"train": 6, "val": 2, "test": 2},
        chunk=3,
        family=MaskFamily(p=0.5),
        seed=0,
    )
    url = str(tmp_path / "store.zarr")
    build_store(url, cfg, progress=False, use_ray=False)
    seen = []
    for split in ("train", "val", "test"):
        ds = xr.open_zarr(url, group=split)
        idx = ds["source_index"].values.astype(int)
        seen += list(idx)
        values = ds["truth"].values if split != "train" else ds["field"].values
        expected = w[idx, :4].numpy()[:, :, None]
        ok = np.isfinite(values)
        np.testing.assert_array_equal(values[ok], expected[ok])
        if split == "train":
            mask = ds["mask"].values
            assert np.isnan(values[:, :, 0][~mask]).all()
    assert sorted(seen) == list(range(10))  # disjoint splits covering the file


def test_bad_files_are_named(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        generate(PublicNavierStokesConfig(path=str(tmp_path / "missing.pt")), 1)
    torch.save({"omega": torch.zeros(2, 3, 8, 8)}, tmp_path / "wrong_key.pt")
    with pytest.raises(StoreError, match="no tensor 'vorticity'"):
        generate(PublicNavierStokesConfig(path=str(tmp_path / "wrong_key.pt")), 1)
    torch.save({"vorticity": torch.zeros(2, 8, 8)}, tmp_path / "wrong_ndim.pt")
    with pytest.raises(StoreError, match=r"\(N, T, H, W\)"):
        generate(PublicNavierStokesConfig(path=str(tmp_path / "wrong_ndim.pt")), 1)
    _write(tmp_path / "small.pt", n=3)
    with pytest.raises(StoreError, match="holds 3 trajectories"):
        generate(PublicNavierStokesConfig(path=str(tmp_path / "small.pt")), 2, offset=2)
