"""A shuffled, sharded sample order that reads each store chunk about once per epoch.

A plain shuffle draws samples from all over the split. When the split is larger than a worker's
chunk cache (:class:`~incdyn.datasets.torch_dataset.SplitDataset`), almost every sample then
decodes a whole chunk for one item: at the paper's size (100×64×64, 32-sample chunks) reading
then costs several times the compute of a step (the benchmark suite's data items measure it).

Per epoch, seeded by ``seed + epoch`` (``set_epoch``, as ``DistributedSampler``):

1. the chunks are permuted and their samples laid end to end;
2. the list is cut into ``num_replicas`` equal contiguous shards (wrapped around to pad, as
   ``DistributedSampler`` pads), so each rank reads its own run of chunks;
3. each shard is cut into windows of ``window`` chunks' worth of samples, and the samples of a
   window are shuffled together.

With ``window`` = the chunks the cache holds, each chunk is decoded once per epoch. When a
window covers a whole shard the order within it is a uniform shuffle of the shard.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ChunkShuffleSampler(Sampler[int]):
    """Sample indices of ``n`` samples stored in chunks of ``chunk`` (see module docstring).

    Args:
        n: samples in the split.
        chunk: samples per store chunk.
        window: chunks shuffled together (the chunks a worker's cache holds), >= 1.
        num_replicas: ranks sharing the split (Ray Train's world size).
        rank: this rank, in ``[0, num_replicas)``.
        seed: base seed; the epoch is added (``set_epoch``).

    ``skip``: indices the next epoch leaves out at its start (a resumed training's batches
    before its checkpoint); reset to 0 once that epoch has begun.
    """

    def __init__(
        self,
        n: int,
        chunk: int,
        *,
        window: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
    ) -> None:
        if n < 1 or chunk < 1 or window < 1:
            raise ValueError(f"n={n}, chunk={chunk} and window={window} must all be >= 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} must lie in [0, num_replicas={num_replicas})")
        self.n, self.chunk, self.window = n, chunk, window
        self.num_replicas, self.rank, self.seed = num_replicas, rank, seed
        self.epoch, self.skip = 0, 0
        self.per_rank = math.ceil(n / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        chunks = math.ceil(self.n / self.chunk)
        order = torch.cat(
            [
                torch.arange(c * self.chunk, min((c + 1) * self.chunk, self.n))
                for c in torch.randperm(chunks, generator=g).tolist()
            ]
        )
        total = self.per_rank * self.num_replicas
        if total > self.n:  # pad by wrapping around, as DistributedSampler does
            order = torch.cat([order, order[: total - self.n]])
        shard = order[self.rank * self.per_rank : (self.rank + 1) * self.per_rank]
        mix = torch.Generator().manual_seed((self.seed + self.epoch) * 1_000_003 + self.rank + 1)
        out = [
            piece[torch.randperm(len(piece), generator=mix)]
            for piece in torch.split(shard, self.window * self.chunk)
        ]
        skip, self.skip = self.skip, 0
        return iter(torch.cat(out).tolist()[skip:])
