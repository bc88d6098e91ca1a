"""csl-train as a user runs it, on CIFAR-10 (python pickles) and STL-10
(binary) files written here in their real formats: it pretrains, then
evaluates beside a random-init encoder, with no download."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

KWARGS = '{"arch": "resnet18", "width": 8, "hidden_dim": 16, "proj_dim": 8}'


def _write_cifar10(root, per_batch: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)  # N x (3 x 32 x 32), row-major planes
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": rng.integers(0, 10, per_batch).tolist()}, f)


def _write_stl10(root, n: int) -> None:
    folder = root / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split in ("unlabeled", "train", "test"):
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # STL-10 stores column-major
        if split != "unlabeled":
            rng.integers(1, 11, n).astype(np.uint8).tofile(folder / f"{split}_y.bin")  # labels 1..10


@pytest.mark.parametrize("dataset", ["cifar10", "stl10"])
def test_csl_train_command_on_dataset_files(dataset, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    if dataset == "cifar10":
        _write_cifar10(root, per_batch=8)  # 40 training images
    else:
        _write_stl10(root, n=24)
    cmd = [sys.executable, "-m", "csl_ext.cli", "--method", "simclr", "--method-kwargs", KWARGS]
    cmd += ["--dataset", dataset, "--data-root", str(root), "--image-size", "16", "--epochs", "1"]
    cmd += ["--batch-size", "8", "--num-workers", "0", "--backend", "torchvision", "--no-progress"]
    cmd += ["--knn-images", "0", "--eval-protocols", "knn", "--output-dir", str(tmp_path / "run")]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps = 40 // 8 if dataset == "cifar10" else 24 // 8  # STL-10 pretrains on its unlabeled split
    assert f"completed: {steps} steps, 1 epochs" in done.stdout
    knn_row = [line.split() for line in done.stdout.splitlines() if line.startswith("knn ")]
    assert len(knn_row) == 1 and all(0 <= float(v) <= 1 for v in knn_row[0][1:])  # pretrained, random init
    assert (tmp_path / "run" / "checkpoint.pt").exists()
