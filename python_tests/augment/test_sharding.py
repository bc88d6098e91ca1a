"""Shards of one epoch cover the dataset exactly once, on both backends and inputs."""

import numpy as np
import pytest
import torch

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


def test_defaults_come_from_torch_distributed(monkeypatch):
    assert default_shard() == (0, 1)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)
    assert default_shard() == (2, 3)
    assert ShardSampler(10).shard_id == 2
    with pytest.raises(ValueError, match="shard_id"):
        default_shard(3, 3)
    with pytest.raises(ValueError, match="num_shards"):
        default_shard(0, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_array_shards_cover_dataset_once_per_epoch(backend, images16):
    n, k = 10, 3
    aug = aug_or_skip(backend)
    loaders = [aug.loader(images16[:n], np.arange(n), batch_size=3, num_workers=1, device="cpu",
                          seed=5, shard_id=s, num_shards=k) for s in range(k)]
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
    loaders = [aug.loader(file_root=root, batch_size=3, num_workers=1, device="cpu", seed=0,
                          shard_id=s, num_shards=k) for s in range(k)]
    for _ in range(2):  # two epochs of the same loaders
        got, labels = [], []
        for dl in loaders:
            for x, y in dl:
                level = ((x * std + mean) * 255).mean((1, 2, 3)).round()
                got += ((level - 10) / 30).round().long().tolist()
                labels += y.tolist()
        assert sorted(got) == list(range(n))
        assert [labels[got.index(i)] for i in range(n)] == (ids % 3).tolist()  # class = folder
