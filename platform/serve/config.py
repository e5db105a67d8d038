"""Server-side settings of the imputation service: each replica's limits, and the deployment's
replicas (fixed, or autoscaling between bounds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from incdyn.datasets.errors import UserError

# the command-line option of each setting (``incdyn serve``)
OPTIONS = {"max_body_bytes": "--max-body-mb", "threads": "--cpus-per-replica"}


def _option(name: str) -> str:
    return OPTIONS.get(name, f"--{name.replace('_', '-')}")


@dataclass(frozen=True)
class ServeConfig:
    """Server-side settings of every replica.

    Attributes:
        max_batch_size: most requests one ``@serve.batch`` call gathers (1 = no batching).
        batch_wait_s: longest wait for a batch to fill after its first request.
        max_k: largest ensemble size a request may ask for.
        max_body_bytes: largest request body (and largest inflated ``.npz``).
        max_network_batch: most rows (requests × K) per network forward pass.
        grid: ``(H, W)`` the requests must have; None: the checkpoint's, else any grid.
        threads: torch threads per replica.
        device: ``"cpu"`` or ``"cuda"``.
    """

    max_batch_size: int = 16
    batch_wait_s: float = 0.01
    max_k: int = 64
    max_body_bytes: int = 32 * 2**20
    max_network_batch: int = 256
    grid: tuple[int, int] | None = None
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_k", "max_body_bytes", "max_network_batch", "threads"):
            if getattr(self, name) < 1:
                raise UserError(
                    _option(name), f"{getattr(self, name)} is below 1", "give 1 or more"
                )
        if self.batch_wait_s < 0:
            raise UserError("--batch-wait-s", f"{self.batch_wait_s} is negative", "give 0 or more")


def deployment_options(
    config: ServeConfig,
    replicas: int,
    min_replicas: int | None,
    max_replicas: int | None,
    cpus_per_replica: float,
    gpus_per_replica: float,
) -> dict[str, Any]:
    """Serve deployment options: fixed ``replicas``, or autoscaling between min and max."""
    options: dict[str, Any] = {
        "max_ongoing_requests": max(2 * config.max_batch_size, 32),
        "ray_actor_options": {"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
    }
    if min_replicas is not None or max_replicas is not None:
        lo = 1 if min_replicas is None else min_replicas
        hi = max(lo, replicas) if max_replicas is None else max_replicas
        if not 0 <= lo <= hi or hi < 1:
            raise UserError(
                "--min-replicas/--max-replicas",
                f"{lo}, {hi} are not 0 <= min <= max >= 1",
                "raise --max-replicas to at least --min-replicas and 1",
            )
        options["autoscaling_config"] = {
            "min_replicas": lo,
            "initial_replicas": max(lo, 1),
            "max_replicas": hi,
            "target_ongoing_requests": config.max_batch_size,
        }
    else:
        if replicas < 1:
            raise UserError("--replicas", f"{replicas} is below 1", "give 1 or more")
        options["num_replicas"] = replicas
    return options
