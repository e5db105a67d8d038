"""The imputer an actor of the pool runs: the record opened and the model loaded once, then
one output block per call (Ray Data's callable-class ``map_batches``, or in-process)."""

from __future__ import annotations

import numpy as np
import torch

from incdyn.platform.impute.block import BlockResult, fill_block
from incdyn.platform.impute.fillers import ClassicalFiller, DiffusionFiller, Filler
from incdyn.platform.impute.job import ImputeJob
from incdyn.platform.impute.record import open_record


def filler_of(job: ImputeJob) -> Filler:
    if job.method == "model":
        assert job.checkpoint is not None
        return DiffusionFiller(job.checkpoint, k=job.k, device=job.device)
    return ClassicalFiller(job.method)


class BlockImputer:
    """Callable class: ``{"block": [b, ...]}`` → one row of counts and held-out sums per block."""

    def __init__(self, job: ImputeJob) -> None:
        torch.set_num_threads(max(1, job.threads))
        self.job = job
        self.record = open_record(
            job.url, job.variables, job.dims, time=job.time, domain=job.domain
        )
        self.filler = filler_of(job)

    def run(self, b: int) -> BlockResult:
        return fill_block(self.job, self.record, self.filler, b)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [self.run(int(b)) for b in batch["block"]]
        return rows_of(results)


def rows_of(results: list[BlockResult]) -> dict[str, np.ndarray]:
    keys = ("block", "frames", "filled", "observed", "inside", "empty_frames")
    out = {k: np.array([getattr(r, k) for r in results], np.int64) for k in keys}
    for k in ("held", "sq_error", "covered"):
        out[k] = np.stack([np.asarray(getattr(r, k), np.float64) for r in results])
    return out
