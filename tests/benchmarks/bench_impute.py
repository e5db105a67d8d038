"""Benchmark item 11 (alone, not in ``run_all.py``): ``incdyn impute`` at scale.

On a COBE-SST2 region with cloud gaps (the record of docs/impute.md: 40 × 96, ``--frames``
months from 2000) and a width-16 UNet of 4 frames on 16 × 16 tiles (random weights: speed
only), K = 8:

- **frames/s of ``incdyn impute`` over the offline batched ensemble** on the same windows and
  tiles: the offline side is the single-step ensemble of every (window, tile) piece in network
  batches of one output block's pieces, data already in memory, nothing blended or written;
  the ``impute`` side is the whole command in this process (read, blend, write). Target ≥ 0.8.
- **2 actors over 1**: frames/s of the Ray Data actor pool, 2 imputers of 1 CPU against 1
  (one local Ray of 2 CPUs).
- **peak memory on a record several times larger than a cap**: ``incdyn impute --method
  telea`` in a fresh process on a synthetic record (``--big-frames`` × 256 × 256 float32)
  against the cap ``RSS after imports + record / 4``; VmHWM of that process.
- **DINEOF wall time** on the same COBE record (one reconstruction of the whole record).

    .venv/bin/python tests/benchmarks/bench_impute.py --out /tmp/impute.json [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_lib import peak_rss_bytes, print_rows, row, rss_bytes

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the impute record builders


def _checkpoint(tmp: Path) -> Path:
    from impute_records import tiny_checkpoint

    return tiny_checkpoint(
        tmp / "ckpt", variables=["sst"], dims=["time", "lat", "lon"], grid=(16, 16), ensemble=8
    )


def _record(tmp: Path, frames: int) -> str:
    from impute_records import cobe_region_with_clouds

    end = f"{2000 + (frames - 1) // 12}-{(frames - 1) % 12 + 1:02d}"
    return cobe_region_with_clouds(
        tmp / "cobe.nc", period=("2000-01", end), lat=(59.5, 20.5), lon=(140.5, 235.5)
    )


def offline_seconds(opts) -> tuple[float, int]:
    """The single-step ensemble of every piece, a block's pieces per call, data in memory."""
    from incdyn.platform.impute.block import observations, piece_seed
    from incdyn.platform.impute.fillers import DiffusionFiller
    from incdyn.platform.impute.runner import prepare

    p = prepare(opts)
    record = p.record.with_domain()
    job = dataclasses.replace(p.job, inside=record.domain)
    lay = job.layout
    filler = DiffusionFiller(job.checkpoint, k=job.k)
    values, observed, _ = observations(job, record, 0, lay.frames)
    (th, tw), (ph, pw) = lay.tile, lay.pad
    batches = []
    for b in range(lay.n_blocks):
        vs, ms, seeds = [], [], []
        for s in lay.windows_of_block(b):
            for ti, (r, c) in enumerate(lay.tile_corners):
                v = np.zeros((lay.window, values.shape[1], ph, pw), np.float32)
                m = np.zeros((lay.window, ph, pw), bool)
                v[:, :, :th, :tw] = np.nan_to_num(
                    values[s : s + lay.window, :, r : r + th, c : c + tw]
                )
                m[:, :th, :tw] = observed[s : s + lay.window, r : r + th, c : c + tw]
                vs.append(v), ms.append(m), seeds.append(piece_seed(0, s, ti))
        batches.append((np.stack(vs), np.stack(ms), seeds))
    t = time.perf_counter()
    for v, m, seeds in batches:
        filler.fill(v, m, seeds)
    return time.perf_counter() - t, lay.frames


def impute_seconds(opts) -> float:
    from incdyn.platform.impute.runner import run_impute

    t = time.perf_counter()
    run_impute(dataclasses.replace(opts, overwrite=True))
    return time.perf_counter() - t


def big_record(path: Path, frames: int) -> int:
    import xarray as xr

    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"v": (("t", "y", "x"), np.zeros((frames, 256, 256), np.float32))},
        coords={"t": np.arange(frames)},
    )
    ds.to_zarr(path, mode="w", compute=False, encoding={"v": {"chunks": (16, 256, 256)}})
    for a in range(0, frames, 16):
        block = rng.normal(size=(min(16, frames - a), 256, 256)).astype(np.float32)
        block[rng.random(block.shape) < 0.3] = np.nan
        xr.Dataset({"v": (("t", "y", "x"), block)}).to_zarr(
            path, region={"t": slice(a, a + len(block))}
        )
    return frames * 256 * 256 * 4


def memory_child(src: str, out: str) -> None:
    """In a fresh process: RSS after imports, then the imputation's peak."""
    from incdyn.platform.impute.options import ImputeOptions
    from incdyn.platform.impute.runner import run_impute

    base = rss_bytes()
    opts = ImputeOptions(model=None, input=src, out=out, method="telea", variables=("v",),
                         dims=("t", "y", "x"), actors=0, block=16, progress=False)  # fmt: skip
    run_impute(opts)
    print(json.dumps({"base": base, "peak": peak_rss_bytes()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--big-frames", type=int, default=1600)
    ap.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    import torch

    from incdyn.platform.impute.options import ImputeOptions

    torch.set_num_threads(2)
    os.environ.setdefault("RAY_worker_niceness", "0")
    frames = 36 if args.quick else args.frames
    big = 400 if args.quick else args.big_frames
    started, load0 = time.perf_counter(), os.getloadavg()
    rows, raw = [], {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ckpt, src = _checkpoint(tmp), _record(tmp, frames)
        opts = ImputeOptions(model=str(ckpt), input=src, out=str(tmp / "o.zarr"), actors=0,
                             cpus_per_actor=2, block=12, progress=False)  # fmt: skip
        off, n = offline_seconds(opts)
        imp = impute_seconds(opts)
        raw["offline_s"], raw["impute_s"], raw["frames"] = off, imp, n
        ratio = off / imp
        rows.append(row("11", "frames/s of incdyn impute / offline batched ensemble", ratio, "x",
                        target=">= 0.8", met=ratio >= 0.8,
                        note=f"{n / imp:.2f} vs {n / off:.2f} frames/s"))  # fmt: skip
        pool = {}
        for actors in (1, 2):
            o = dataclasses.replace(
                opts, actors=actors, cpus_per_actor=1, out=str(tmp / f"a{actors}.zarr")
            )
            impute_seconds(o)  # a first run: the output exists, Ray is up
            pool[actors] = impute_seconds(o)
        raw["pool_s"] = pool
        rows.append(row("11", "2 actors / 1 actor, frames/s (Ray Data pool)", pool[1] / pool[2],
                        "x", note=f"{n / pool[2]:.2f} vs {n / pool[1]:.2f} frames/s incl. actor start"))  # fmt: skip
        t = time.perf_counter()
        from incdyn.platform.impute.runner import run_impute

        run_impute(ImputeOptions(model=None, input=src, out=str(tmp / "d.zarr"), method="dineof",
                                 variables=("sst",), dims=("time", "lat", "lon"), actors=0,
                                 progress=False))  # fmt: skip
        raw["dineof_s"] = time.perf_counter() - t
        rows.append(row("11", "DINEOF (whole record) wall time", raw["dineof_s"], "s",
                        note=f"{n} frames x 40 x 96"))  # fmt: skip
        size = big_record(tmp / "big.zarr", big)
        import subprocess

        done = subprocess.run([sys.executable, __file__, "--memory-child", str(tmp / "big.zarr"),
                               str(tmp / "bigout.zarr")], capture_output=True, text=True,
                              check=True)  # fmt: skip
        mem = json.loads(done.stdout.strip().splitlines()[-1])
        cap = mem["base"] + size / 4
        raw["memory"] = {**mem, "record_bytes": size, "cap": cap}
        rows.append(row("11", "peak RSS / cap (record = 4 x (cap - RSS after imports))",
                        mem["peak"] / cap, "x", target="< 1", met=mem["peak"] < cap,
                        note=f"peak {mem['peak'] / 2**20:.0f} MiB, imports {mem['base'] / 2**20:.0f} MiB, record {size / 2**20:.0f} MiB"))  # fmt: skip
    out = {"rows": rows, "raw": raw, "elapsed_s": time.perf_counter() - started,
           "loadavg_start": load0, "loadavg_end": os.getloadavg()}  # fmt: skip
    print_rows(out, args.out)


if __name__ == "__main__":
    main()
