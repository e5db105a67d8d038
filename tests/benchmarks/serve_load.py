"""Load test and benchmark of the Ray Serve imputer, on loopback only, bounded in requests and time.

Serves a model (``--checkpoint``, or a small random-weight UNet built here) on 127.0.0.1 and
measures throughput and p50/p99 latency at several client concurrencies, batched
(``--max-batch-size``) and unbatched (max batch size 1), against offline batched imputation of
the same requests in one process (``ensemble_impute``, ``--max-batch-size`` requests per call).
Requests go on the client's default wire (``.npz`` body, ``.npz`` answer); ``--wire json`` measures
the JSON path instead.

    python tests/benchmarks/serve_load.py --out serve_bench.json
    python tests/benchmarks/serve_load.py --requests 400 --concurrency 1 16 32 --k 16 --grid 32 --out b.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import torch

from incdyn.models.backbones.registry import build_denoiser
from incdyn.models.samplers.single import ensemble_impute
from incdyn.platform.checkpoint import checkpoint_spec, load_denoiser, read_meta, save_checkpoint
from incdyn.platform.sampling import sampler_plan
from incdyn.platform.serve.client import impute


def build_checkpoint(directory: Path, *, channels: int, frames: int, width: int) -> Path:
    """A random-weight UNet checkpoint (the cost of a forward pass does not depend on training)."""
    backbone = {"name": "unet", "width": width, "mults": [1, 2], "blocks_per_level": 1,
                "dropout": 0.0, "padding_mode": "circular"}  # fmt: skip
    schedule = {"beta_min": 0.1, "beta_max": 20.0, "t_min": 1e-3}
    torch.manual_seed(0)
    model = build_denoiser(backbone, schedule, channels=channels, frames=frames)
    with torch.no_grad():  # the output gain starts at 0
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    partition = {"kind": "pixel", "context_ratio": 0.7, "query_ratio": 0.7, "drop_blocks": 1,
                 "query_all": False}  # fmt: skip
    method = {"kind": "diffusion", "name": "ours", "partition": partition, "ensemble": 8}
    spec = {"name": "serve-bench", "backbone": backbone, "schedule": schedule,
            "data": {"observation": {"kind": "pixel", "p": 0.2, "blocks": 3, "static": True}},
            "methods": [method]}  # fmt: skip
    meta = {"spec": spec, "method": method, "channels": [f"c{i}" for i in range(channels)],
            "frames": frames, "normalization": {"mean": [0.0] * channels, "std": [1.0] * channels},
            "step": 0}  # fmt: skip
    return save_checkpoint(directory, model=model, optimizer=None, meta=meta)


def make_requests(n: int, meta: dict, grid: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    t, c = meta["frames"], len(meta["channels"])
    out = []
    for i in range(n):
        values = rng.normal(size=(t, c, grid, grid)).astype(np.float32)
        mask = np.broadcast_to(rng.random((grid, grid)) < 0.2, (t, grid, grid)).copy()
        mask[0, 0, 0] = True
        out.append({"values": values, "mask": mask, "seed": i})
    return out


def _summary(latencies: list[float], wall: float) -> dict:
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "seconds": round(wall, 3),
        "throughput_rps": round(len(lat) / wall, 2),
        "p50_ms": round(1e3 * statistics.median(lat), 1),
        "p99_ms": round(1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
    }


def load(url: str, reqs: list[dict], *, concurrency: int, k: int, wire: dict, deadline: float):
    """Send ``reqs`` from ``concurrency`` threads (one keep-alive session each) until done or
    ``deadline``; returns the summary of the completed requests. ``wire``: extra arguments of
    ``impute`` (``{}``: the client's default wire)."""
    local = threading.local()
    latencies: list[float] = []

    def one(r):
        if time.perf_counter() > deadline:
            return
        if not hasattr(local, "session"):
            local.session = requests.Session()
        t0 = time.perf_counter()
        impute(url, r["values"], r["mask"], k=k, seed=r["seed"], session=local.session, **wire)
        latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, reqs))
    return _summary(latencies, time.perf_counter() - t0)


def offline(checkpoint: Path, reqs: list[dict], *, k: int, batch: int) -> dict:
    """The same requests imputed in this process, ``batch`` requests per ``ensemble_impute``."""
    denoiser, meta = load_denoiser(checkpoint)
    partition = sampler_plan(*checkpoint_spec(meta)).partition
    mean = np.asarray(meta["normalization"]["mean"], np.float32).reshape(1, 1, -1, 1, 1)
    std = np.asarray(meta["normalization"]["std"], np.float32).reshape(1, 1, -1, 1, 1)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for i in range(0, len(reqs), batch):
        chunk = reqs[i : i + batch]
        values = np.stack([r["values"] for r in chunk])  # (B, T, C, H, W)
        mask = np.stack([r["mask"] for r in chunk])
        x = np.where(mask[:, :, None], (values - mean) / std, 0).astype(np.float32)
        x = torch.from_numpy(x.transpose(0, 2, 1, 3, 4).copy())
        imp, _ = ensemble_impute(denoiser, x, torch.from_numpy(mask), partition, k=k, generator=g)
        phys = imp.numpy().transpose(0, 2, 1, 3, 4) * std + mean
        np.where(mask[:, :, None], values, phys)
    wall = time.perf_counter() - t0
    return {"requests": len(reqs), "seconds": round(wall, 3),
            "throughput_rps": round(len(reqs) / wall, 2)}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="write the results here (JSON)")
    ap.add_argument("--checkpoint", help="serve this checkpoint directory (default: build one)")
    ap.add_argument("--requests", type=int, default=200, help="requests per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 32])
    ap.add_argument("--k", type=int, default=8, help="ensemble size of every request")
    ap.add_argument("--grid", type=int, default=16, help="H = W of the built model's samples")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--width", type=int, default=16, help="UNet width of the built model")
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--batch-wait-s", type=float, default=0.01)
    ap.add_argument("--wire", choices=["default", "json"], default="default",
                    help="the client's default (.npz both ways) or JSON (binary=False)")  # fmt: skip
    ap.add_argument("--max-seconds", type=float, default=60.0, help="cap per measurement")
    args = ap.parse_args()

    import ray
    from ray import serve

    from incdyn.platform.serve.app import build_app
    from incdyn.platform.serve.config import ServeConfig

    torch.set_num_threads(1)  # like one replica (1 CPU, 1 torch thread)
    tmp = tempfile.TemporaryDirectory()
    ckpt = Path(args.checkpoint) if args.checkpoint else build_checkpoint(
        Path(tmp.name) / "ckpt", channels=args.channels, frames=args.frames, width=args.width
    )  # fmt: skip
    meta = read_meta(ckpt)
    reqs = make_requests(args.requests, meta, args.grid)
    results: dict = {"args": vars(args), "cpus": os.cpu_count(), "serving": {}}

    ray.init(address="local", include_dashboard=False, logging_level="ERROR")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for label, mbs in (("batched", args.max_batch_size), ("unbatched", 1)):
            config = ServeConfig(
                max_batch_size=mbs, batch_wait_s=args.batch_wait_s, max_k=max(64, args.k)
            )
            serve.run(
                build_app(str(ckpt), config=config),
                name="bench",
                route_prefix="/",
                logging_config={"enable_access_log": False},
            )
            wire = {} if args.wire == "default" else {"binary": False}
            load(url, reqs[:8], concurrency=4, k=args.k, wire=wire, deadline=1e18)  # warm up
            for c in args.concurrency:
                deadline = time.perf_counter() + args.max_seconds
                row = load(url, reqs, concurrency=c, k=args.k, wire=wire, deadline=deadline)
                results["serving"][f"{label}/c{c}"] = row
                print(f"{label:>9} c={c:<3} {row}", flush=True)
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()
    results["offline"] = offline(ckpt, reqs, k=args.k, batch=args.max_batch_size)
    tmp.cleanup()

    s = results["serving"]
    print(f"\n{'mode':<12}{'conc':>5}{'req':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for key, row in s.items():
        label, c = key.split("/c")
        print(f"{label:<12}{c:>5}{row['requests']:>6}{row['throughput_rps']:>9}"
              f"{row['p50_ms']:>9}{row['p99_ms']:>9}")  # fmt: skip
    off = results["offline"]
    print(f"{'offline':<12}{'-':>5}{off['requests']:>6}{off['throughput_rps']:>9}{'-':>9}{'-':>9}")
    ratios = {}
    c_ref = 16 if 16 in args.concurrency else max(args.concurrency)
    b, u = s.get(f"batched/c{c_ref}"), s.get(f"unbatched/c{c_ref}")
    if b and u:
        ratios[f"batched/unbatched throughput at c={c_ref}"] = round(
            b["throughput_rps"] / u["throughput_rps"], 2
        )
    best = max(r["throughput_rps"] for k, r in s.items() if k.startswith("batched"))
    ratios["best batched serving / offline throughput"] = round(best / off["throughput_rps"], 2)
    results["ratios"] = ratios
    for name, value in ratios.items():
        print(f"{name}: {value}")
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
