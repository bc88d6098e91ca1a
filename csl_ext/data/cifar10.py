"""CIFAR-10 in its official python-pickle format (cifar-10-batches-py).

Layout: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (``root``
may also be the cifar-10-batches-py directory itself). Each file is a pickle
of a dict with b"data": uint8 (10000, 3072) rows in C x H x W order and
b"labels": 10000 ints. Downloaded only with ``download=True`` (torchvision's
downloader; needs network).

- [0]: Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html
"""

import os
import pickle

import numpy as np

from csl_ext.data.arrays import ImageArray

FOLDER = "cifar-10-batches-py"
FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _folder(root: str) -> str:
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"CIFAR-10 root {root!r} does not exist (pass --download to fetch it, network permitting)"
        )
    return root if os.path.basename(os.path.normpath(root)) == FOLDER else os.path.join(root, FOLDER)


def _read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"CIFAR-10 file {path!r} is missing (expected the python version, cifar-10-python.tar.gz, extracted)"
        )
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except Exception as error:  # noqa: BLE001  (any unpickling failure means a bad file)
        raise ValueError(f"CIFAR-10 file {path!r} is not a valid python-pickle batch: {error}") from error
    if not isinstance(entry, dict):
        raise ValueError(f"CIFAR-10 file {path!r} must hold a dict, got {type(entry).__name__}")
    data = entry.get(b"data", entry.get("data"))
    labels = entry.get(b"labels", entry.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"CIFAR-10 file {path!r} lacks the 'data' or 'labels' entry")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise ValueError(
            f"CIFAR-10 file {path!r}: data must be uint8 (N, 3072) with N labels, got {data.dtype} {data.shape} "
            f"and {len(labels)} labels"
        )
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(root: str, split: str = "train", download: bool = False, image_size: int = 32) -> ImageArray:
    """CIFAR-10 ``split`` ("train": 50000, "test": 10000) as an ImageArray.

    Raises:
        FileNotFoundError: root or a batch file is missing.
        ValueError: unknown split, or a malformed file.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)} for cifar10, got {split!r}")
    if download:
        from torchvision.datasets import CIFAR10

        os.makedirs(root, exist_ok=True)
        try:
            CIFAR10(root, train=split == "train", download=True)
        except Exception as error:  # noqa: BLE001
            raise RuntimeError(f"could not download CIFAR-10 into {root!r}: {error}") from error
    folder = _folder(root)
    parts = [_read_batch(os.path.join(folder, name)) for name in FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageArray(images, labels, num_classes=10, image_size=image_size, name=f"cifar10/{split}")
