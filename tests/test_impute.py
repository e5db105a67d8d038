"""``incdyn impute``: a whole record in, the same record filled out.

The model is a tiny UNet with seeded random weights (tests/impute_records.py): these tests check
where values go (coordinates, order, observed values, land, blending, resume), not skill.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from impute_records import (
    COBE_FILE,
    GAPPY_SHAPE,
    cobe_region_with_clouds,
    gappy_file,
    tiny_checkpoint,
)

from incdyn.platform.impute import output
from incdyn.platform.impute.block import blend, observations
from incdyn.platform.impute.options import ImputeOptions
from incdyn.platform.impute.record import ImputeError
from incdyn.platform.impute.runner import prepare, run_impute


def _tyx(da: xr.DataArray, dims) -> np.ndarray:
    return da.transpose(*dims).values


def _check_product(out: xr.Dataset, inp: xr.Dataset, names, dims) -> None:
    """The output's promises: coordinates, order, attributes, observed values, land, no gap."""
    for d in dims:
        assert np.array_equal(out[d].values, inp[d].values), d
        assert out[d].attrs == inp[d].attrs
    flag = _tyx(out[output.FLAG], dims)
    assert out[output.FLAG].attrs["flag_meanings"].split()[:4] == [
        "filled",
        "observed",
        "held_out",
        "outside_domain",
    ]
    for name in names:
        assert out[name].dims == inp[name].dims  # the input's dimension order
        assert out[name].attrs["units"] == inp[name].attrs["units"]
        assert output.FLAG in out[name].attrs["ancillary_variables"]
        o, i = _tyx(out[name], dims), _tyx(inp[name], dims)
        seen = np.isfinite(i) & (flag != 2)  # held-out points are filled, not given
        assert np.array_equal(o[seen], i[seen])  # observed values unchanged, bit for bit
        assert np.isnan(o[flag == 3]).all()  # outside the domain
        assert not np.isnan(o[flag != 3]).any()  # every point of the domain filled
        lo, up = _tyx(out[f"{name}_lower"], dims), _tyx(out[f"{name}_upper"], dims)
        inside = flag != 3
        assert (lo[inside] <= o[inside] + 1e-9).all() and (o[inside] <= up[inside] + 1e-9).all()
        assert (_tyx(out[f"{name}_spread"], dims)[flag == 0] > 0).all()
    assert "incdyn" in out.attrs["history"] and "K=3" in out.attrs["history"]


def test_fills_a_packed_record_in_its_own_layout(tmp_path):
    """Odd names and order (lon, when, lat), descending latitude, int16 packing with a
    _FillValue, land, a frame with no observation; netCDF out; tiles and windows of a model
    smaller than the record."""
    src = gappy_file(tmp_path / "in.nc")
    ckpt = tiny_checkpoint(
        tmp_path / "ckpt", variables=["sst", "sss"], dims=["when", "lat", "lon"], grid=(16, 16)
    )  # 14 rows padded to 16 and cropped back; 18 columns in two overlapping tiles
    out_nc = tmp_path / "filled.nc"
    summary = run_impute(
        ImputeOptions(
            model=str(ckpt), input=src, out=str(out_nc), actors=0, block=6, progress=False
        )
    )
    assert summary.frames == GAPPY_SHAPE[0] and summary.empty_frames == 1
    assert not Path(f"{out_nc}.partial.zarr").exists()
    out, inp = xr.open_dataset(out_nc), xr.open_dataset(src)
    _check_product(out, inp, ["sst", "sss"], ("when", "lat", "lon"))
    assert out.attrs["title"] == inp.attrs["title"]
    assert out.attrs["history"].startswith("made by a test\n")
    empty = _tyx(out[output.FLAG], ("when", "lat", "lon"))[7]  # the frame with no observation
    assert (empty[:3, :4] == 3).all() and set(np.unique(empty)) == {3, 4}
    with pytest.raises(ImputeError, match=r"--out: .* exists; give --overwrite"):
        run_impute(ImputeOptions(model=str(ckpt), input=src, out=str(out_nc), actors=0))


@pytest.mark.skipif(not COBE_FILE.is_file(), reason="the COBE-SST2 record is not here")
def test_fills_a_cobe_region_with_clouds(tmp_path):
    """A region of the real record (land, coast) with cloud gaps; a time range inside the file;
    held-out points in the shape of the record's gaps, scored."""
    src = cobe_region_with_clouds(tmp_path / "cobe.nc")
    ckpt = tiny_checkpoint(
        tmp_path / "ckpt", variables=["sst"], dims=["time", "lat", "lon"], grid=(16, 16)
    )
    out = tmp_path / "cobe.zarr"
    summary = run_impute(
        ImputeOptions(
            model=str(ckpt),
            input=src,
            out=str(out),
            time=("1990-03", "1991-10"),
            holdout=0.1,
            actors=0,
            progress=False,
        )
    )
    inp = xr.open_dataset(src).sel(time=slice("1990-03", "1991-10"))
    ds = xr.open_zarr(out)
    assert ds.attrs["institution"] == inp.attrs["institution"]
    assert summary.heldout_points["sst"] > 0 and np.isfinite(summary.heldout_rmse["sst"])
    flag = _tyx(ds[output.FLAG], ("time", "lat", "lon"))
    held = flag == 2
    truth = _tyx(inp.sst, ("time", "lat", "lon"))
    assert np.isfinite(truth[held]).all()  # held-out points were observed
    assert not np.array_equal(_tyx(ds.sst, ("time", "lat", "lon"))[held], truth[held])
    _check_product(ds, inp, ["sst"], ("time", "lat", "lon"))


def _smooth_memory_record(name: str, frames: int, h: int, w: int) -> str:
    t, y, x = np.meshgrid(np.arange(frames), np.arange(h), np.arange(w), indexing="ij")
    field = np.sin(x / 9 + t / 15) + np.cos(y / 7 - t / 20)
    gaps = np.random.default_rng(3).random(field.shape) < 0.5
    field[gaps] = np.nan
    url = f"memory://{name}.zarr"
    xr.Dataset({"v": (("t", "y", "x"), field.astype(np.float32), {"units": "1"})}).to_zarr(
        url, mode="w"
    )
    return url


class OffsetFiller:
    """Every piece's estimate is its own random offset, constant over the piece's frames
    (``over="time"``) or over its points (``over="space"``): what separate windows or tiles
    disagree by, so that a seam would show where they meet."""

    name, k, calibrated = "offsets", 2, False

    def __init__(self, over: str) -> None:
        self.over = over

    def fill(self, values, mask, seeds):
        _, t, c, h, w = values.shape
        out = np.empty(values.shape, np.float32)
        for i, s in enumerate(seeds):
            rng = np.random.default_rng(s)
            size = (1, c, h, w) if self.over == "time" else (t, c, 1, 1)
            out[i] = rng.normal(0.0, 1.0, size)
        return out, np.ones_like(out)

    def inflation(self, level):
        return np.ones(1)

    def spread_scale(self):
        return np.ones(1)


def _jumps(est: np.ndarray, axis: int, boundaries: set[int], rim: int) -> tuple[float, float]:
    """Mean absolute change between neighbours along ``axis``: where a piece begins or ends
    (between ``i - 1`` and ``i`` for ``i`` in ``boundaries``), and elsewhere; the ``rim``
    outermost points, which only one piece covers, are left out."""
    d = np.abs(np.diff(est, axis=axis))
    d = np.moveaxis(d, axis, 0).reshape(d.shape[axis], -1).mean(axis=1)
    span = range(rim + 1, len(d) + 1 - rim)
    at = [d[i - 1] for i in span if i in boundaries]
    inside = [d[i - 1] for i in span if i not in boundaries]
    return float(np.mean(at)), float(np.mean(inside))


def test_no_seams_across_windows_blocks_and_tiles(tmp_path):
    """Pieces that disagree (independent random offsets) blended over windows of 8 frames every
    4, output blocks of 6 frames and tiles of 8 × 8 every 4: the mean frame-to-frame (and
    column-to-column) change where a window (tile) begins or ends is within 10 % of the change
    inside. Equal weights instead of the taper fail it (a plain average jumps at the edges)."""
    frames, h, w = 64, 24, 24  # 15 windows, 5 × 5 tiles
    url = _smooth_memory_record("seams", frames, h, w)
    ckpt = tiny_checkpoint(
        tmp_path / "ckpt", variables=["v"], dims=["t", "y", "x"], frames=8, grid=(8, 8)
    )
    p = prepare(ImputeOptions(model=str(ckpt), input=url, out="memory://seams.zarr", block=6))
    record = p.record.with_domain()
    job = dataclasses.replace(p.job, inside=record.domain)
    lay = job.layout
    assert lay.window_starts[:3] == [0, 4, 8] and len(lay.tile_corners) == 25

    def blended(filler) -> np.ndarray:
        parts = []
        for b in range(lay.n_blocks):  # blocks of 6 frames: not aligned with the windows
            a, e = lay.block_frames(b)
            wins = lay.windows_of_block(b)
            lo, hi = min(wins), max(wins) + lay.window
            values, observed, _ = observations(job, record, lo, hi)
            parts.append(blend(job, filler, values, observed, wins, lo, a, e)[0])
        return np.concatenate(parts)[:, 0]  # (T, H, W)

    est = blended(OffsetFiller("time"))
    edges = {s for s in lay.window_starts} | {s + lay.window for s in lay.window_starts}
    at, inside = _jumps(est, 0, edges, lay.stride)
    assert abs(at / inside - 1) < 0.1, (at, inside)
    est = blended(OffsetFiller("space"))
    cols = {c for _, c in lay.tile_corners}
    at, inside = _jumps(est, 2, cols | {c + lay.tile[1] for c in cols}, lay.tile[1] // 2)
    assert abs(at / inside - 1) < 0.1, (at, inside)


def test_errors_name_the_option_and_write_nothing(tmp_path):
    src = gappy_file(tmp_path / "in.nc")
    ckpt = tiny_checkpoint(tmp_path / "ckpt", variables=["sst", "sss"], dims=["when", "lat", "lon"])
    out = tmp_path / "never.zarr"
    cases = [
        ({"variables": ("sst",)}, "--variables: the model takes 2 channels"),
        ({"variables": ("sst", "salt")}, "--variables: .* has no variable 'salt'"),
        ({"dims": ("time", "lat", "lon")}, r"--dims: \['time'\] not in"),
        ({"time": ("30", "40")}, "--time: 30:40 lies outside"),
        ({"time": ("0", "2")}, "--time: the record has 3 frames"),
    ]
    for change, message in cases:
        opts = ImputeOptions(model=str(ckpt), input=src, out=str(out), actors=0, progress=False)
        with pytest.raises(ImputeError, match=message):
            run_impute(ImputeOptions(**{**opts.__dict__, **change}))
    big = tiny_checkpoint(
        tmp_path / "big", variables=["sst", "sss"], dims=["when", "lat", "lon"], grid=(64, 64)
    )
    with pytest.raises(ImputeError, match="--input: the grid 14 × 18 is smaller than the model"):
        run_impute(ImputeOptions(model=str(big), input=src, out=str(out), actors=0))
    with pytest.raises(ImputeError, match="--method"):
        run_impute(ImputeOptions(model=str(ckpt), input=src, out=str(out), method="telea"))
    assert not out.exists()


def test_dry_run_prints_the_plan_without_reading_values(tmp_path, monkeypatch, capsys):
    from incdyn.platform.cli import main
    from incdyn.platform.impute.record import Record

    src = gappy_file(tmp_path / "in.nc")
    ckpt = tiny_checkpoint(tmp_path / "ckpt", variables=["sst", "sss"], dims=["when", "lat", "lon"])

    def no_read(*_a, **_k):
        raise AssertionError("a dry run read values")

    monkeypatch.setattr(Record, "read", no_read)
    monkeypatch.setattr(Record, "with_domain", no_read)
    out = tmp_path / "o.zarr"
    assert main(["impute", str(ckpt), "--input", src, "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "windows: 9 of 4 frames" in text and "tiles: 12 of 8 × 8" in text
    assert "MiB" in text and not out.exists()


def test_classical_methods_fill_the_same_layout(tmp_path):
    """DINEOF (one reconstruction of the whole record), Telea and temporal consistency, no
    MODEL: the same layout; held-out points are scored; Telea's run is recorded in MLflow."""
    src = gappy_file(tmp_path / "in.nc")
    inp = xr.open_dataset(src)
    for method in ("dineof", "telea", "temporal"):
        out = tmp_path / f"{method}.zarr"
        summary = run_impute(
            ImputeOptions(
                model=None,
                input=src,
                out=str(out),
                method=method,
                variables=("sst", "sss"),
                dims=("when", "lat", "lon"),
                holdout=0.0 if method == "temporal" else 0.1,
                actors=0,
                progress=False,
                mlflow=method == "telea",
                tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
            )
        )
        ds = xr.open_zarr(out)
        dims = ("when", "lat", "lon")
        flag = _tyx(ds[output.FLAG], dims)
        o, i = _tyx(ds.sst, dims), _tyx(inp.sst, dims)
        given = flag == 1
        assert np.array_equal(o[given], i[given]) and not np.isnan(o[flag != 3]).any()
        assert np.isnan(o[flag == 3]).all()
        if method == "dineof":
            assert 0 < summary.heldout_rmse["sst"] < 1.0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("incdyn-impute").experiment_id])
    assert run.data.params["method"] == "telea" and run.data.params["output"].endswith("telea.zarr")
    assert {"wall_s", "heldout_rmse_sst", "points_filled"} <= set(run.data.metrics)


def test_a_killed_run_resumes_and_equals_an_uninterrupted_one(tmp_path):
    """SIGKILL once some blocks are written; the rerun fills only the rest; the result equals
    an uninterrupted run's, bit for bit."""
    import multiprocessing

    src = gappy_file(tmp_path / "in.nc")
    ckpt = tiny_checkpoint(
        tmp_path / "ckpt", variables=["sst", "sss"], dims=["when", "lat", "lon"], grid=(16, 16)
    )
    killed, whole = tmp_path / "killed.zarr", tmp_path / "whole.zarr"
    opts = ImputeOptions(
        model=str(ckpt), input=src, out=str(killed), actors=0, block=2, progress=False
    )
    proc = multiprocessing.get_context("fork").Process(target=run_impute, args=(opts,))
    proc.start()
    deadline = time.monotonic() + 60
    done = np.zeros(0, bool)
    while time.monotonic() < deadline and proc.is_alive():
        try:
            done = output.done_blocks(str(killed))
        except Exception:  # the template is not there yet
            done = np.zeros(0, bool)
        if done.any():
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert done.any() and not done.all(), done  # killed half way
    with pytest.raises(ImputeError, match="made with other settings"):
        run_impute(ImputeOptions(**{**opts.__dict__, "seed": 1}))
    summary = run_impute(opts)
    assert 0 < summary.blocks_resumed < summary.blocks
    run_impute(ImputeOptions(**{**opts.__dict__, "out": str(whole)}))
    a, b = xr.open_zarr(killed).load(), xr.open_zarr(whole).load()
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name
    with pytest.raises(ImputeError, match="complete; give --overwrite"):
        run_impute(opts)


@pytest.mark.slow  # actors start in fresh processes: about a minute on 2 loaded cores
def test_ray_data_actor_pool_equals_one_process(tmp_path, ray_local):
    """Two imputers of a Ray Data actor pool write the same record, bit for bit, as one process
    (every window draws from its own seed, whichever actor fills it)."""
    src = gappy_file(tmp_path / "in.nc")
    ckpt = tiny_checkpoint(
        tmp_path / "ckpt", variables=["sst", "sss"], dims=["when", "lat", "lon"], grid=(16, 16)
    )
    base = ImputeOptions(model=str(ckpt), input=src, out="", block=5, progress=False)
    one = run_impute(dataclasses.replace(base, out=str(tmp_path / "one.zarr"), actors=0))
    pool = run_impute(dataclasses.replace(base, out=str(tmp_path / "pool.zarr"), actors=2))
    assert pool.filled == one.filled and pool.frames == GAPPY_SHAPE[0]
    a, b = xr.open_zarr(tmp_path / "one.zarr").load(), xr.open_zarr(tmp_path / "pool.zarr").load()
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name
