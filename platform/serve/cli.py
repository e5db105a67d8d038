"""``incdyn serve MODEL``: serve batched ensemble imputation of a trained model over HTTP.

    incdyn serve runs/ckpt_dir                         # a checkpoint directory
    incdyn serve 3f2a...c1 --port 8001 --replicas 2   # an MLflow run id (its 'checkpoint' artifact)
    incdyn serve models:/quickstart-ours/1             # a registered model (or models:/NAME@ALIAS)
    incdyn serve RUN_ID --min-replicas 1 --max-replicas 4 --max-batch-size 32 --batch-wait-s 0.02

Bound to 127.0.0.1 by default; ``--host 0.0.0.0`` exposes it. Blocks until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from incdyn.datasets.errors import UserError


def _grid(text: str) -> tuple[int, int]:
    try:
        h, w = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must look like 32x32, got {text!r}") from None
    return h, w


def grid_of(checkpoint: Path) -> tuple[int, int] | None:
    """The (H, W) the model was trained on: ``meta["grid"]``, else its store's, else None."""
    from incdyn.platform.checkpoint import read_meta

    meta = read_meta(checkpoint)
    if meta.get("grid"):
        return tuple(int(n) for n in meta["grid"])
    try:
        from incdyn.datasets.store import open_split

        sizes = open_split(meta["store"], "train").sizes
        return int(sizes["y"]), int(sizes["x"])
    except Exception:  # no store recorded, or not reachable from here: accept any grid
        return None


def check_port(host: str, port: int, *, bind: bool) -> None:
    """A TCP port; with ``bind`` (a local Ray: Serve's proxy listens here) one free on ``host``."""
    if not 1 <= port <= 65535:
        raise UserError("--port", f"{port} is not a TCP port", "give one in 1..65535")
    if not bind:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        problem = f"{host!r} is not an address of this machine ({exc.strerror})"
        raise UserError("--host", problem) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(
                "--port",
                f"{host}:{port} cannot be listened on ({exc.strerror})",
                "stop what serves there, or choose another --port",
            ) from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to the ``incdyn`` parser's subparsers."""
    p = subparsers.add_parser(
        "serve", help="serve batched ensemble imputation of a trained model over HTTP"
    )
    p.add_argument(
        "model",
        help="checkpoint directory, MLflow run id of a trained method, or registered model "
        "(models:/NAME/VERSION, models:/NAME@ALIAS)",
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (0.0.0.0: all interfaces)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port")
    p.add_argument("--replicas", type=int, default=1, help="fixed number of replicas")
    p.add_argument("--min-replicas", type=int, help="autoscaling: fewest replicas")
    p.add_argument("--max-replicas", type=int, help="autoscaling: most replicas")
    p.add_argument("--cpus-per-replica", type=float, default=1.0, help="Ray CPUs per replica")
    p.add_argument("--gpus-per-replica", type=float, default=0.0, help="Ray GPUs per replica")
    p.add_argument("--max-batch-size", type=int, default=16, help="requests per batch (1: none)")
    p.add_argument("--batch-wait-s", type=float, default=0.01, help="longest wait for a batch")
    p.add_argument("--max-k", type=int, default=64, help="largest ensemble size a request gets")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body, MiB")
    p.add_argument(
        "--grid", type=_grid, help="HxW the requests must have (default: the training store's)"
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--name", default="incdyn", help="Serve application name")
    return p


def run(args: argparse.Namespace) -> int:
    """Start Ray and Serve, deploy the imputer, print its URL and block until Ctrl-C."""
    import ray
    from ray import serve

    from incdyn.platform.ray_session import init_ray
    from incdyn.platform.registry.model_source import resolve_checkpoint
    from incdyn.platform.serve.app import build_app
    from incdyn.platform.serve.config import ServeConfig

    # what the user gave fails before Ray starts (UserError: one line, cli.main)
    local = not os.environ.get("RAY_ADDRESS")
    check_port(args.host, args.port, bind=local)
    checkpoint = resolve_checkpoint(args.model, args.tracking_uri)
    config = ServeConfig(
        max_batch_size=args.max_batch_size,
        batch_wait_s=args.batch_wait_s,
        max_k=args.max_k,
        max_body_bytes=int(args.max_body_mb * 2**20),
        grid=args.grid or grid_of(checkpoint),
        threads=max(1, int(args.cpus_per_replica)),
    )
    app = build_app(
        args.model,
        config=config,
        tracking_uri=args.tracking_uri,
        replicas=args.replicas,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        cpus_per_replica=args.cpus_per_replica,
        gpus_per_replica=args.gpus_per_replica,
    )
    init_ray()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (`cmd &`)
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name=args.name, route_prefix="/")
        url = f"http://{args.host}:{args.port}"
        print(
            f"serving {args.model} at {url}  (POST {url}/impute, GET {url}/healthz; Ctrl-C stops)",
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if local:  # our own Ray: stop it all
            serve.shutdown()
        else:  # a shared cluster: remove only this application
            serve.delete(args.name)
        ray.shutdown()
    return 0
