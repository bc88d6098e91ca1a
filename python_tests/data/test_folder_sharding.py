"""Multi-process folder reading: two real gloo processes (what torchrun starts),
each reading its own shard through the trainer's loader interface; together
they read every file exactly once per epoch, and the Trainer runs on the folder."""

import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from csl_ext.augment import make_augmentation
from csl_ext.augment.factory import dali_available
from csl_ext.data import ImageFolder
from csl_ext.train import TrainConfig, Trainer
from csl_ext.train.batches import PretrainBatches

WORLD, N, BATCH = 2, 24, 4  # 12 files per process: 3 steps of 4
# No DataLoader workers here: mp.spawn's children start their workers with "spawn" too
# (a fresh interpreter each, ~20 s on 2 shared cores); torchrun's processes fork them.
# The worker path is tested in test_image_folder.py and python_tests/train/test_train_folder.py.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, root, backends, train_config, results):
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        for backend in backends:
            aug = make_augmentation("simclr", 16, backend=backend, jitter_p=0.0, gray_p=0.0)
            folder = ImageFolder(root, "train", 16)
            batches = PretrainBatches(
                folder,
                aug,
                local_batch=BATCH,
                rank=dist.get_rank(),
                world_size=dist.get_world_size(),
                num_workers=0,
                device=torch.device("cpu"),
                seed=5,
                with_labels=True,
            )
            mean, std = torch.tensor(aug.config.mean).view(1, 3, 1, 1), torch.tensor(aug.config.std).view(1, 3, 1, 1)
            for epoch in range(2):
                ids, labels, named = [], [], []
                for views, y, sample_ids in batches.epoch(epoch):
                    level = ((views[0] * std + mean) * 255).mean((1, 2, 3))
                    ids += ((level - 10) / 10).round().long().tolist()
                    labels += y.tolist()
                    named += [int(Path(folder.path(int(i))).stem) for i in sample_ids]  # the file the id names
                results[(backend, epoch, rank)] = (ids, labels, named)
        result = Trainer(train_config).fit()  # the trainer on the folder, in the same process group
        results[("trainer", rank)] = (result.status, result.step, [float(x) for x in result.losses], result.knn)
    finally:
        dist.destroy_process_group()


def test_two_processes_read_disjoint_shards_covering_the_folder_once_per_epoch(tmp_path):
    labels = np.arange(N) % 3
    for i in range(N):  # the grey level encodes the file's index (PNG: lossless)
        folder = tmp_path / "train" / f"c{labels[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((18, 20, 3), 10 + 10 * i, np.uint8)).save(folder / f"{i:02d}.png")
    backends = ["torchvision"] + (["dali"] if dali_available() else [])
    cfg = TrainConfig(
        method="simclr",
        method_kwargs={"arch": "resnet18", "width": 4, "hidden_dim": 16, "proj_dim": 8},
        dataset="folder",
        data_root=str(tmp_path),
        image_size=16,
        epochs=1,
        batch_size=8,
        num_workers=0,
        backend="torchvision",
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        progress=False,
        tensorboard=False,
        knn_images=12,
        knn_every=1,
    )  # kNN on rank 0, every step
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), backends, cfg, results), nprocs=WORLD, join=True)

    for backend in backends:
        orders = []
        for epoch in range(2):
            (ids0, y0, named0), (ids1, y1, named1) = results[(backend, epoch, 0)], results[(backend, epoch, 1)]
            assert (named0, named1) == (ids0, ids1), f"{backend}: sample_ids do not name the images read"
            assert len(ids0) == len(ids1) == N // WORLD
            assert not set(ids0) & set(ids1), f"{backend}: the shards overlap"
            assert sorted(ids0 + ids1) == list(range(N)), f"{backend}: not every file exactly once"
            assert y0 + y1 == [int(labels[i]) for i in ids0 + ids1]  # each file with its class
            orders.append(ids0 + ids1)
        assert orders[0] != orders[1]  # a new permutation every epoch
    if len(backends) == 2:  # both backends read the same files in the same order
        assert results[("dali", 0, 0)][0] == results[("torchvision", 0, 0)][0]
    status0, status1 = results[("trainer", 0)], results[("trainer", 1)]
    assert status0[:2] == status1[:2] == ("max_steps", 2)
    assert all(np.isfinite(status0[2] + status1[2]))
    assert [s for s, _ in status0[3]] == [1, 2] and status1[3] == []  # rank 0 monitors; no hang, no mismatch
    assert (tmp_path / "run" / "checkpoint.pt").exists()
