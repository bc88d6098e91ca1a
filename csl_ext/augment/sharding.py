"""Shard assignment shared by both backends, so DALI and the DataLoader agree.

Every process draws the same permutation of the whole dataset (same seed, same
epoch) and takes a contiguous slice of it, so the shards of one epoch cover the
dataset exactly once, e.g. N=10 over 3 processes -> 4 + 3 + 3 samples.
"""

from __future__ import annotations

import numpy as np
import torch


def default_shard(shard_id: int | None = None, num_shards: int | None = None) -> tuple[int, int]:
    """Fill missing shard arguments from torch.distributed (rank, world size) or (0, 1).

    Raises:
        ValueError: ``num_shards`` < 1 or ``shard_id`` outside [0, num_shards).
    """
    dist_on = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_shards is None:
        num_shards = torch.distributed.get_world_size() if dist_on else 1
    if shard_id is None:
        shard_id = torch.distributed.get_rank() if dist_on else 0
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards!r}")
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be in [0, {num_shards}), got {shard_id!r}")
    return int(shard_id), int(num_shards)


def shard_bounds(n: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    """[start, stop) of shard ``shard_id`` in a length-``n`` ordering (DALI's split)."""
    return n * shard_id // num_shards, n * (shard_id + 1) // num_shards


def shard_indices(n: int, shard_id: int, num_shards: int, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """Indices (int64) that shard ``shard_id`` visits in ``epoch``."""
    order = np.arange(n, dtype=np.int64)
    if shuffle:
        # same permutation on every process: seed and epoch only, never the rank
        order = np.random.default_rng([seed, epoch]).permutation(n)
    start, stop = shard_bounds(n, shard_id, num_shards)
    return order[start:stop]


class ShardSampler(torch.utils.data.Sampler):
    """DataLoader sampler with the same shards as the DALI in-memory source.

    Call :meth:`set_epoch` (or just iterate again: it counts epochs itself) to
    reshuffle.
    """

    def __init__(
        self, n: int, shard_id: int | None = None, num_shards: int | None = None, *, shuffle: bool = True, seed: int = 0
    ):
        self.n = int(n)
        self.shard_id, self.num_shards = default_shard(shard_id, num_shards)
        self.shuffle, self.seed, self.epoch = shuffle, int(seed), 0
        self._explicit_epoch = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._explicit_epoch = int(epoch), True

    def __iter__(self):
        idx = shard_indices(
            self.n, self.shard_id, self.num_shards, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch
        )
        if not self._explicit_epoch:
            self.epoch += 1
        self._explicit_epoch = False
        return iter(idx.tolist())

    def __len__(self) -> int:
        start, stop = shard_bounds(self.n, self.shard_id, self.num_shards)
        return stop - start
