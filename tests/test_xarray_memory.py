"""Opening and windowing a file larger than the bound never loads it whole.

A zarr store of 64 MiB (two variables, 256 frames of 128 × 256, chunked by 16 frames) is read
through the xarray source: the checks, the split windows, the domain (a reduction over every
frame) and two windows. The ``tracemalloc`` peak (every numpy allocation: compressed and
decoded chunks, blocks, the windows) stays within what one block of the reduction and the
windows cost while zarr decodes them (about three times their bytes), a third of the store; a
control that reads one variable whole shows that the measure sees the data it reads.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from incdyn.datasets.generators import make_config
from incdyn.datasets.sources.gridded.domain import BLOCK_BYTES
from incdyn.datasets.sources.xarray_source import domain_of, generate, split_windows

MiB = 2**20
FRAMES, H, W = 256, 128, 256  # 32 MiB per float32 variable


@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> tuple[str, int]:
    url = str(tmp_path_factory.mktemp("big") / "big.zarr")
    time = pd.date_range("2001-01-01", periods=FRAMES, freq="6h")
    ds = xr.Dataset(coords={"time": time, "lat": np.linspace(-60, 60, H), "lon": np.arange(W)})
    ds.to_zarr(url, mode="w")
    rng = np.random.default_rng(0)
    for name in ("u", "v"):  # written 16 frames at a time: the writer stays small too
        empty = xr.DataArray(
            np.zeros((FRAMES, H, W), np.float32), dims=("time", "lat", "lon")
        ).chunk({"time": 16})
        xr.Dataset({name: empty}).to_zarr(url, mode="a", compute=False)
        for start in range(0, FRAMES, 16):
            block = rng.standard_normal((16, H, W), dtype=np.float32)
            block[:, :8, :8] = np.nan  # a corner missing at every time: outside the domain
            part = xr.Dataset({name: (("time", "lat", "lon"), block)})
            part.to_zarr(url, region={"time": slice(start, start + 16)})
    return url, 2 * FRAMES * H * W * 4


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_opening_and_windowing_stay_bounded(big_store):
    url, nbytes = big_store
    cfg = make_config("xarray", "default", {
        "url": url, "variables": ["u", "v"], "dims": {"time": "time", "y": "lat", "x": "lon"},
        "window": 4, "stride": 4, "split": [0.5, 0.25, 0.25], "gaps": "real",
    })  # fmt: skip

    def open_and_read():
        assert len(split_windows(cfg)["test"]) == 16
        inside = domain_of(cfg)
        assert not inside[:8, :8].any() and inside.sum() == H * W - 64
        sim = generate(cfg, 2, torch.Generator(), split="train", start=3)
        assert sim.fields.shape == (2, 4, 2, H, W)

    peak = _peak(open_and_read)
    window_bytes = 4 * 4 * 2 * H * W * 4  # the four windows asked for
    bound = BLOCK_BYTES + 2 * window_bytes + 4 * MiB  # a block, the windows (and their stack)
    print(
        f"store {nbytes / MiB:.0f} MiB, traced peak {peak / MiB:.1f} MiB, bound {bound / MiB:.0f}"
    )
    assert bound < nbytes / 2 and peak < bound
    control = _peak(lambda: xr.open_zarr(url, chunks=None)["u"].values)  # one variable whole
    assert control > nbytes / 2 - MiB
