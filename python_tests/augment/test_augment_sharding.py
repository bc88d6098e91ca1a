"""Shards of one epoch cover the dataset exactly once, on both backends and inputs."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csl_ext.augment import make_augmentation, shard_indices
from csl_ext.augment.sharding import ShardSampler, default_shard

BACKENDS = ["dali", "torchvision"]


def aug_or_skip(backend, size=16):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    return make_augmentation("eval", size, backend=backend)


def test_shard_indices_partition_every_epoch():
    for n, k in [(10, 3), (7, 2), (5, 5), (3, 4)]:
        for epoch in range(3):
            parts = [shard_indices(n, s, k, shuffle=True, seed=1, epoch=epoch) for s in range(k)]
            assert sorted(np.concatenate(parts).tolist()) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shard_arguments_are_checked():
    assert default_shard() == (0, 1)  # outside a process group
    with pytest.raises(ValueError, match="shard_id"):
        default_shard(3, 3)
    with pytest.raises(ValueError, match="num_shards"):
        default_shard(0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard_worker(rank, world, port, backend, images, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        assert default_shard() == (rank, world)
        assert ShardSampler(len(images)).shard_id == rank
        loader = make_augmentation("eval", 16, backend=backend).loader(
            images, np.arange(len(images)), batch_size=3, num_workers=1, device="cpu", seed=5
        )  # shard_id / num_shards from the process group
        results[rank] = [torch.cat([batch[-1] for batch in loader]).tolist() for _ in range(2)]
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_processes_shard_by_rank(backend, images16):
    """Two gloo processes, shard arguments left to torch.distributed: every
    epoch the two shards together hold every sample exactly once."""
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    n, world = 11, 2
    results = mp.Manager().dict()
    mp.spawn(_shard_worker, args=(world, _free_port(), backend, images16[:n], results), nprocs=world, join=True)
    for epoch in range(2):
        shards = [results[rank][epoch] for rank in range(world)]
        assert sorted(shards[0] + shards[1]) == list(range(n))
        assert abs(len(shards[0]) - len(shards[1])) <= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_array_shards_cover_dataset_once_per_epoch(backend, images16):
    n, k = 10, 3
    aug = aug_or_skip(backend)
    loaders = [
        aug.loader(
            images16[:n], np.arange(n), batch_size=3, num_workers=1, device="cpu", seed=5, shard_id=s, num_shards=k
        )
        for s in range(k)
    ]
    epochs = []
    for _ in range(2):
        seen = [torch.cat([b[-1] for b in dl]).tolist() for dl in loaders]
        assert sorted(sum(seen, [])) == list(range(n))
        assert [len(s) for s in seen] == [dl.num_samples for dl in loaders]
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled between epochs


@pytest.mark.parametrize("backend", BACKENDS)
def test_file_shards_cover_dataset_once_per_epoch(backend, write_folder):
    # constant PNG images whose grey level encodes the sample id (lossless)
    n, k = 7, 2
    ids = np.arange(n)
    imgs = np.broadcast_to((ids * 30 + 10).astype(np.uint8)[:, None, None, None], (n, 20, 24, 3)).copy()
    root = write_folder(imgs, ids % 3, ext="png", name=backend)
    aug = aug_or_skip(backend)
    mean = torch.tensor(aug.config.mean).view(1, 3, 1, 1)
    std = torch.tensor(aug.config.std).view(1, 3, 1, 1)
    loaders = [
        aug.loader(file_root=root, batch_size=3, num_workers=1, device="cpu", seed=0, shard_id=s, num_shards=k)
        for s in range(k)
    ]
    for _ in range(2):  # two epochs of the same loaders
        got, labels = [], []
        for dl in loaders:
            for x, y in dl:
                level = ((x * std + mean) * 255).mean((1, 2, 3)).round()
                got += ((level - 10) / 30).round().long().tolist()
                labels += y.tolist()
        assert sorted(got) == list(range(n))
        assert [labels[got.index(i)] for i in range(n)] == (ids % 3).tolist()  # class = folder
