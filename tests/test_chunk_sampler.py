"""ChunkShuffleSampler: a full, sharded, per-epoch shuffle that decodes each chunk about once."""

from __future__ import annotations

import itertools
from collections import OrderedDict

import pytest
import torch

from incdyn.datasets.chunk_sampler import ChunkShuffleSampler


def _chunk_loads(order: list[int], chunk: int, cache_chunks: int) -> int:
    """Chunks decoded by an LRU cache of ``cache_chunks`` chunks reading ``order``
    (the policy of SplitDataset._load)."""
    cache: OrderedDict[int, None] = OrderedDict()
    loads = 0
    for i in order:
        c = i // chunk
        if c in cache:
            cache.move_to_end(c)
            continue
        loads += 1
        cache[c] = None
        if len(cache) > cache_chunks:
            cache.popitem(last=False)
    return loads


def test_one_rank_epoch_is_a_permutation_and_epochs_differ():
    s = ChunkShuffleSampler(100, 16, window=2, seed=3)
    first = list(s)
    assert sorted(first) == list(range(100)) and len(s) == 100
    assert list(s) == first  # same epoch, same order
    s.set_epoch(1)
    assert sorted(list(s)) == list(range(100)) and list(s) != first


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_cover_the_split_with_equal_lengths_padding_only_as_needed(world):
    n = 101
    shards = [
        list(ChunkShuffleSampler(n, 8, window=3, num_replicas=world, rank=r, seed=5))
        for r in range(world)
    ]
    lengths = {len(s) for s in shards}
    assert lengths == {-(-n // world)}
    together = [i for s in shards for i in s]
    assert set(together) == set(range(n))
    assert (
        len(together) - n == -(-n // world) * world - n
    )  # duplicates = DistributedSampler's padding


def test_each_chunk_is_decoded_once_per_epoch_with_a_cache_of_window_chunks():
    n, chunk, cache = 512, 16, 4  # 32 chunks, the cache holds 4
    ours = list(ChunkShuffleSampler(n, chunk, window=cache, seed=0))
    plain = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    assert _chunk_loads(ours, chunk, cache) == n // chunk
    assert _chunk_loads(plain, chunk, cache) > 0.8 * n  # nearly one decode per sample


def test_a_window_covering_the_split_mixes_all_chunks():
    n, chunk = 512, 16
    order = list(ChunkShuffleSampler(n, chunk, window=n // chunk, seed=1))
    same = sum(a // chunk == b // chunk for a, b in itertools.pairwise(order))
    # a uniform shuffle puts neighbours in the same chunk with probability ~ (chunk-1)/(n-1) = 3 %
    assert same / (n - 1) < 0.1
    first_chunks = {i // chunk for i in order[:64]}
    assert len(first_chunks) > 16  # the first batches draw from most chunks, not from 4


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="window=0"):
        ChunkShuffleSampler(10, 2, window=0)
    with pytest.raises(ValueError, match="rank 2"):
        ChunkShuffleSampler(10, 2, window=1, num_replicas=2, rank=2)


# -- the training loader's choice (platform/train/worker.py) --------------------------------------


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from tests.test_streaming import write_random_store

    url = str(tmp_path_factory.mktemp("chunks") / "s.zarr")
    write_random_store(url)
    return url


def _count_decodes(ds) -> list[int]:
    decoded = []
    load = ds._load

    def counting(c):
        if c not in ds._cache:
            decoded.append(c)
        return load(c)

    ds._load = counting
    return decoded


def test_loader_keeps_the_plain_shuffle_when_the_split_fits_the_cache(small_store):
    from torch.utils.data import DistributedSampler

    from incdyn.datasets.torch_dataset import SplitDataset
    from incdyn.platform.train.loader import build_training_loader

    ds = SplitDataset(small_store, "train")
    assert ds.chunks <= ds.cache_chunks
    loader = build_training_loader(ds, 4, seed=0, rank=0, world=1)
    assert isinstance(loader.sampler, DistributedSampler)  # one replica: a seeded shuffle
    loader.sampler.set_epoch(1)
    full = list(loader.sampler)
    loader.sampler.skip = 8  # a training resumed two batches into epoch 1
    assert list(loader.sampler) == full[8:] and list(loader.sampler) == full


def test_loader_shards_by_the_spec_seed_over_several_workers(small_store):
    from torch.utils.data import DistributedSampler

    from incdyn.datasets.torch_dataset import SplitDataset
    from incdyn.platform.train.loader import build_training_loader

    ds = SplitDataset(small_store, "train")

    def order(seed: int, rank: int, epoch: int = 0) -> list[int]:
        loader = build_training_loader(ds, 4, seed=seed, rank=rank, world=2)
        assert isinstance(loader.sampler, DistributedSampler)
        loader.sampler.set_epoch(epoch)
        return list(loader.sampler)

    rank0, rank1 = order(3, 0), order(3, 1)
    assert sorted(rank0 + rank1) == list(range(len(ds)))  # the two shards partition the split
    assert order(3, 0) == rank0  # the same seed, the same batches
    assert order(4, 0) != rank0  # the spec's seed, not a fixed one, drives the shuffle
    assert order(3, 0, epoch=1) != rank0  # reshuffled each epoch


def test_loader_reads_each_chunk_once_per_epoch_when_the_split_exceeds_the_cache(small_store):
    from incdyn.datasets.torch_dataset import SplitDataset
    from incdyn.platform.train.loader import build_training_loader

    ds = SplitDataset(small_store, "train", cache_bytes=3 * 2**20)  # 2 of the 64 chunks
    assert ds.cache_chunks == 2 and ds.chunks == 64
    loader = build_training_loader(ds, 4, seed=0, rank=1, world=2)
    assert isinstance(loader.sampler, ChunkShuffleSampler)
    decoded = _count_decodes(ds)
    seen = [int(i) for batch in loader for i in batch["index"]]
    assert len(seen) == 128 and len(set(seen)) == 128  # rank 1's half of the 256 samples
    assert sorted(decoded) == sorted({i // 4 for i in seen})  # each of its chunks once
