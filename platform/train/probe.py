"""Per-worker diagnostics of a Ray Train run, for tests and for debugging distributed training.

With ``$INCDYN_PROBE_DIR`` set in the driver (``train_method`` passes it to the workers as
``probe_dir``), every worker rewrites ``worker<rank>.json`` there at each report: its node and
process, the training (its Ray Train run name), the step it started from (non-zero after a
resume), the sample indices it read per
epoch, its own train loss (before DDP averages anything) and a SHA-256 of its parameters, which
is identical on every rank when DDP all-reduces the gradients. The directory must be shared by
the workers' nodes (any local path when they all run on one machine).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ray
import torch


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in registration order."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class WorkerProbe:
    """Collects what one worker did and writes it atomically (tmp file + rename) on ``report``."""

    def __init__(
        self,
        directory: str | Path,
        *,
        rank: int,
        world: int,
        start_step: int,
        train_run: str | None = None,
    ) -> None:
        self.path = Path(directory) / f"worker{rank}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.record = {
            "rank": rank,
            "world": world,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "train_run": train_run,  # which training (several share a worker group)
            "start_step": start_step,
            "step": start_step,
            "indices": {},  # epoch -> sample indices this worker read, in order
            "reports": [],  # {"step", "train_loss", "param_sha256"} per report
        }

    def saw(self, epoch: int, indices: torch.Tensor) -> None:
        self.record["indices"].setdefault(str(epoch), []).extend(int(i) for i in indices)

    def report(self, step: int, train_loss: float, model: torch.nn.Module) -> None:
        digest = parameter_digest(model)
        self.record["step"] = step
        self.record["reports"].append(
            {"step": step, "train_loss": train_loss, "param_sha256": digest}
        )
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.record))
        os.replace(tmp, self.path)


def read_probes(directory: str | Path) -> dict[int, dict]:
    """``{rank: record}`` of every worker file in ``directory``."""
    records = [json.loads(p.read_text()) for p in Path(directory).glob("worker*.json")]
    return {r["rank"]: r for r in records}
