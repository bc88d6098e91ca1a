"""Datasets read from their real on-disk formats, written here to tmp_path;
missing or malformed files give clear errors."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from csl_ext.data import load_dataset


def test_digits_is_embedded_with_a_fixed_split():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    x, y = train.get_batch([0, 5])
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0], x[:, 1])  # grey replicated to RGB
    again = load_dataset("digits", "train")
    assert np.array_equal(train.labels, again.labels) and torch.equal(train.images, again.images)
    assert sorted(np.bincount(test.labels))[0] >= 35  # stratified: every digit in the test split


def _write_cifar(folder, name, n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    with open(folder / name, "wb") as f:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)
    return data, labels


def test_cifar10_python_pickle_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    parts = [_write_cifar(folder, f"data_batch_{i}", 4, i) for i in range(1, 6)]
    test_data, test_labels = _write_cifar(folder, "test_batch", 3, 9)
    train = load_dataset("cifar10", "train", str(tmp_path))
    assert len(train) == 20 and train.labels.tolist() == sum((p[1] for p in parts), [])
    x, _ = train.get_batch([4])  # first image of data_batch_2
    assert torch.equal(x[0], torch.as_tensor(parts[1][0][0].reshape(3, 32, 32)))
    test = load_dataset("cifar10", "test", str(folder))  # the batches folder itself works too
    assert test.labels.tolist() == test_labels


def test_cifar10_malformed_and_missing(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a valid python-pickle batch"):
        load_dataset("cifar10", "test", str(tmp_path))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"uint8 \(N, 3072\)"):
        load_dataset("cifar10", "test", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_dataset("cifar10", "train", str(tmp_path))


def test_stl10_binary_format_column_major_and_resized(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)  # N x C x H x W
    images.transpose(0, 1, 3, 2).tofile(folder / "train_X.bin")  # stored column-major
    np.array([1, 10, 4], np.uint8).tofile(folder / "train_y.bin")
    images[:2].transpose(0, 1, 3, 2).tofile(folder / "unlabeled_X.bin")
    full = load_dataset("stl10", "train", str(tmp_path), image_size=96)
    x, y = full.get_batch([2, 0])
    assert torch.equal(x[1], torch.as_tensor(images[0])) and y.tolist() == [3, 0]
    small = load_dataset("stl10", "train", str(tmp_path))  # the paper's 64 px
    assert small.get_batch([0])[0].shape == (1, 3, 64, 64)
    unlabeled = load_dataset("stl10", "unlabeled", str(tmp_path))
    assert len(unlabeled) == 2 and unlabeled.labels.tolist() == [-1, -1]
    (folder / "test_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match="not a multiple of"):
        load_dataset("stl10", "test", str(tmp_path))


def test_image_folder_at_128_px(tmp_path):
    for c, cls in enumerate(["cat", "dog"]):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((150, 200, 3), 40 * (c + i), np.uint8)).save(tmp_path / "train" / cls / f"{i}.png")
    data = load_dataset("folder", "train", str(tmp_path))
    x, y = data.get_batch([0, 3])
    assert x.shape == (2, 3, 128, 128) and y.tolist() == [0, 1] and int(x[1, 0, 5, 5]) == 80
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match="no class subdirectories"):
        load_dataset("folder", "val", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", "test", str(tmp_path))
