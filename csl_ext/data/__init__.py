"""Datasets: the embedded digits, CIFAR-10, STL-10 and image folders.

>>> from csl_ext.data import load_dataset
>>> train = load_dataset("digits", "train")   # no download, no path
"""

import os

from csl_ext.data.arrays import ImageArray
from csl_ext.data.cifar10 import load_cifar10
from csl_ext.data.digits import load_digits
from csl_ext.data.folder import ImageFolder, check_same_classes
from csl_ext.data.stl10 import load_stl10

DATASETS = ("digits", "cifar10", "stl10", "folder")
# image side per dataset, as in the paper (STL-10 96 -> 64, ImageNet 128)
DEFAULT_SIZE = {"digits": 32, "cifar10": 32, "stl10": 64, "folder": 128}
# the split used for self-supervised pretraining and the two evaluation splits
SPLITS = {
    "digits": ("train", "train", "test"),
    "cifar10": ("train", "train", "test"),
    "stl10": ("unlabeled", "train", "test"),
    "folder": ("train", "train", "val"),
}


def load_dataset(
    name: str,
    split: str,
    root: str | None = None,
    download: bool = False,
    image_size: int | None = None,
    *,
    skip_bad_images: bool = False,
    num_workers: int = 0,
):
    """Loads a dataset split as an object with ``get_batch(indices) -> (uint8
    (B, 3, S, S), int64 (B,))``, ``labels``, ``num_classes`` and ``len``.

    Args:
        name: "digits" (embedded, no root), "cifar10", "stl10" or "folder".
        split: e.g. "train", "test", "unlabeled" (stl10), "val" (folder).
        root: dataset directory (required except for digits).
        download: fetch cifar10 / stl10 into root first (needs network).
        image_size: output side; default DEFAULT_SIZE[name].
        skip_bad_images, num_workers: folders only, see ImageFolder (skip
            unreadable files with a warning; decoding workers for evaluation).

    Raises:
        ValueError: unknown name / split, missing root, malformed files.
        FileNotFoundError: root or files missing.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    size = image_size or DEFAULT_SIZE[name]
    if name == "digits":
        return load_digits(split, size)
    if not root:
        raise ValueError(f"dataset {name!r} needs a root directory (--data-root)")
    root = os.path.expanduser(root)
    if name == "cifar10":
        return load_cifar10(root, split, download, size)
    if name == "stl10":
        return load_stl10(root, split, download, size)
    return ImageFolder(root, split, size, skip_bad_images=skip_bad_images, num_workers=num_workers)


def load_eval_splits(name: str, root: str | None = None, image_size: int | None = None, **folder_kwargs):
    """(labelled train split, test split) of a dataset for evaluation
    (SPLITS[name][1:]); for folders, checks that val has train's classes.

    Raises:
        ValueError: as load_dataset, or val classes that differ from train's.
    """
    if name not in SPLITS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    _, train_split, test_split = SPLITS[name]
    kwargs = folder_kwargs if name == "folder" else {}
    train = load_dataset(name, train_split, root=root, image_size=image_size, **kwargs)
    test = load_dataset(name, test_split, root=root, image_size=image_size, **kwargs)
    if name == "folder":
        check_same_classes(train, test)
    return train, test


__all__ = [
    "DATASETS",
    "DEFAULT_SIZE",
    "SPLITS",
    "ImageArray",
    "ImageFolder",
    "check_same_classes",
    "load_dataset",
    "load_eval_splits",
    "load_cifar10",
    "load_digits",
    "load_stl10",
]
