"""Each worker's batches of the training split: a seeded shuffle, sharded over the workers."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from incdyn.datasets.chunk_sampler import ChunkShuffleSampler
from incdyn.datasets.torch_dataset import SplitDataset


def build_training_loader(
    train_set: SplitDataset, batch_size: int, seed: int, rank: int, world: int
) -> DataLoader:
    """This worker's shuffled batches of the training split, the order a function of ``seed``.

    When the split fits in the dataset's chunk cache: a plain shuffle, sharded over the workers
    by torch's ``DistributedSampler`` when there are several (built here rather than by Ray
    Train's ``prepare_data_loader``, whose sampler always uses seed 0). When it does not, a
    plain shuffle would decode a whole chunk for nearly every sample,
    so the :class:`ChunkShuffleSampler` shards and shuffles by windows of the chunks the cache
    holds. Either way the train loop calls ``set_epoch`` per epoch where the sampler has it.
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
    elif world > 1:
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, seed=seed)
    else:
        sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(seed))
    return DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True)
