"""Each worker's batches of the training split: a seeded shuffle, sharded over the workers,
that a resumed training picks up where it stopped."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from torch.utils.data import DataLoader, DistributedSampler

from incdyn.datasets.chunk_sampler import ChunkShuffleSampler
from incdyn.datasets.torch_dataset import SplitDataset


def build_training_loader(
    train_set: SplitDataset, batch_size: int, seed: int, rank: int, world: int
) -> DataLoader:
    """This worker's shuffled batches of the training split, the order a function of ``seed``.

    When the split fits in the dataset's chunk cache: a plain shuffle by torch's
    ``DistributedSampler``, sharded over the workers when there are several (built here rather
    than by Ray Train's ``prepare_data_loader``, whose sampler always uses seed 0). When it does not, a
    plain shuffle would decode a whole chunk for nearly every sample,
    so the :class:`ChunkShuffleSampler` shards and shuffles by windows of the chunks the cache
    holds. Either way each epoch's order is a function of ``seed`` and the epoch (the train loop
    calls ``set_epoch``), and the sampler's ``skip`` leaves out the start of a resumed epoch.
    """
    if train_set.chunks > train_set.cache_chunks:
        sampler = ChunkShuffleSampler(
            len(train_set),
            train_set.chunk,
            window=train_set.cache_chunks,
            num_replicas=world,
            rank=rank,
            seed=seed,
        )
    else:
        sampler = ResumableSampler(train_set, num_replicas=world, rank=rank, seed=seed)
    return DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True)


class ResumableSampler(DistributedSampler):
    """torch's ``DistributedSampler`` whose next epoch leaves out its first ``skip`` indices:
    the batches a resumed training took before its checkpoint (they are not read again)."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return itertools.islice(super().__iter__(), skip, None)
