"""A torch ``Dataset`` over one split of a store, opened lazily in each worker.

Items are normalised with the store's training statistics and laid out for the model:
``x_obs`` ``(C, T, H, W)`` (zero at unobserved points), ``mask`` bool ``(T, H, W)`` and, for
evaluation only, ``truth``. Reads go chunk by chunk through a byte-bounded LRU cache, so memory
stays bounded whatever the store's size. Each chunk is normalised once, when it is read, and
cached as tensors; an item is a view of its slice (the benchmark suite's data items measure
the gain over normalising every item).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from incdyn.datasets.store import normalization, open_split


class SplitDataset(Dataset):
    """One split of a store as normalised tensors.

    Args:
        url: store URL (path, ``memory://``, ``gs://``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        with_truth: also return ground truth (val/test; the training split has it only in a
            complete-data oracle's store).
        with_holdout: also return the ``holdout`` mask of held-out observed points (val/test
            of a store that has one).
        limit: use only the first ``limit`` samples.
        cache_bytes: bound on the chunk cache of this dataset object.
    """

    def __init__(
        self,
        url: str,
        split: str,
        *,
        with_truth: bool = False,
        limit: int | None = None,
        cache_bytes: int = 256 * 2**20,
        with_holdout: bool = False,
    ) -> None:
        self.url, self.split, self.with_truth, self.cache_bytes = (
            url,
            split,
            with_truth,
            cache_bytes,
        )
        self.with_holdout = with_holdout
        wanted = (["truth"] if with_truth else []) + (["holdout"] if with_holdout else [])
        if with_truth and split == "train" and "truth" not in open_split(url, split):
            raise ValueError(
                "the training split has no ground truth: it stores observed values only "
                "(NaN where unobserved); ask the val or test split for truth (only a method "
                "with training_data: complete, the complete-data oracle, keeps it for training)"
            )
        ds = open_split(url, split, wanted)
        self.n = ds.sizes["sample"] if limit is None else min(limit, ds.sizes["sample"])
        self.chunk = ds["field"].encoding.get("chunks", (ds.sizes["sample"],))[0]
        self.shape = tuple(ds["field"].shape[1:])  # (T, C, H, W)
        self.channels = tuple(str(c) for c in ds["channel"].values)
        mean, std = normalization(url)
        self.mean = mean.reshape(-1, 1, 1, 1)
        self.std = std.reshape(-1, 1, 1, 1)
        self._ds = None
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cached_bytes = 0

    def __len__(self) -> int:
        return self.n

    @property
    def chunks(self) -> int:
        """Store chunks the split's samples span."""
        return -(-self.n // self.chunk)

    @property
    def cache_chunks(self) -> int:
        """Chunks the cache holds at once (>= 1): normalised float32 fields and truth, bool masks."""
        t, c, h, w = self.shape
        item = t * c * h * w * 4 * (2 if self.with_truth else 1) + t * h * w
        return max(1, self.cache_bytes // (self.chunk * item))

    def __getstate__(self) -> dict:  # reopen lazily in each worker process
        state = self.__dict__.copy()
        state.update(_ds=None, _cache=OrderedDict(), _cached_bytes=0)
        return state

    def _load(self, c: int) -> dict[str, torch.Tensor]:
        """Chunk ``c`` normalised once, as the items' tensors: ``x_obs`` ``(n, C, T, H, W)``
        (zero where unobserved), ``mask`` bool ``(n, T, H, W)`` and, with truth, ``truth``."""
        if c in self._cache:
            self._cache.move_to_end(c)
            return self._cache[c]
        if self._ds is None:
            self._ds = open_split(self.url, self.split, dask=False)  # one chunk per read
        sl = slice(c * self.chunk, (c + 1) * self.chunk)
        field = self._normalise(self._ds["field"].isel(sample=sl).values)
        block = {
            "x_obs": torch.from_numpy(np.nan_to_num(field, nan=0.0, copy=False)),
            "mask": torch.from_numpy(self._ds["mask"].isel(sample=sl).values.astype(bool)),
        }
        if self.with_truth:
            block["truth"] = torch.from_numpy(
                self._normalise(self._ds["truth"].isel(sample=sl).values)
            )
        if self.with_holdout:
            block["holdout"] = torch.from_numpy(
                self._ds["holdout"].isel(sample=sl).values.astype(bool)
            )
        size = sum(v.nbytes for v in block.values())
        while self._cache and self._cached_bytes + size > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= sum(v.nbytes for v in old.values())
        self._cache[c] = block
        self._cached_bytes += size
        return block

    def _normalise(self, values: np.ndarray) -> np.ndarray:
        # (n, T, C, H, W) physical -> (n, C, T, H, W) normalised float32, contiguous
        out = np.subtract(np.moveaxis(values, 2, 1), self.mean, dtype=np.float32, order="C")
        out /= self.std
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """Item ``i``; its tensors are views of the cached chunk (as ``TensorDataset``'s are
        views of its tensors): the ``DataLoader``'s collation copies them; copy before
        modifying one in place."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        block = self._load(i // self.chunk)
        j = i % self.chunk
        return {"index": torch.tensor(i), **{k: v[j] for k, v in block.items()}}

    def denormalise(self, x: torch.Tensor) -> np.ndarray:
        """Model layout ``(B, C, T, H, W)`` normalised → store layout ``(B, T, C, H, W)`` physical."""
        out = x.detach().cpu().numpy() * self.std[None] + self.mean[None]
        return np.moveaxis(out, 2, 1).astype(np.float32)
