"""Start ``mlflow ui`` on a local store (SQLite or a file store), on loopback, and wait for it.

with local_ui("sqlite:////abs/mlflow.db") as base_url:   # e.g. http://127.0.0.1:53127
    ...
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_ui(
    tracking_uri: str, *, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 120.0
) -> tuple[subprocess.Popen, str]:
    """Start ``mlflow ui`` (one worker) on ``tracking_uri``; returns the process and its URL once
    it answers. The process leads its own process group: :func:`stop_ui` ends all of it."""
    port = port or free_port(host)
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", tracking_uri,
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout_s
    while not _ready(url):
        if process.poll() is not None:
            raise RuntimeError(f"mlflow ui exited with status {process.returncode}: {command}")
        if time.monotonic() > deadline:
            stop_ui(process)
            raise TimeoutError(f"mlflow ui did not answer at {url} within {timeout_s:.0f} s")
        time.sleep(0.5)
    return process, url


def stop_ui(process: subprocess.Popen) -> None:
    """Stop the UI's process group (the server and its worker)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def local_ui(tracking_uri: str, **options) -> Iterator[str]:
    process, url = start_ui(tracking_uri, **options)
    try:
        yield url
    finally:
        stop_ui(process)
