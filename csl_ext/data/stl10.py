"""STL-10 in its official binary format (stl10_binary), downsampled to 64 px.

Layout: ``<root>/stl10_binary/{train,test}_X.bin``, ``{train,test}_y.bin`` and
``unlabeled_X.bin`` (``root`` may be the stl10_binary directory itself). X
files are uint8 images of 3 x 96 x 96 stored column-major per channel; y files
hold one uint8 label 1-10 per image. The files are memory-mapped (the
unlabeled split is 2.7 GB) and each batch is resized when fetched: the paper
pretrains on 64 px STL-10 (Falcon & Cho 2020, Sec. 5; AMDIM). Downloaded
only with ``download=True`` (torchvision's downloader; needs network).

- [0]: Coates et al. 2011, https://cs.stanford.edu/~acoates/stl10/
"""

import os

import numpy as np

from csl_ext.data.arrays import ImageArray

FOLDER = "stl10_binary"
SPLITS = ("train", "test", "unlabeled")
PIXELS = 3 * 96 * 96


def _folder(root: str) -> str:
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"STL-10 root {root!r} does not exist (pass --download to fetch it, network permitting)"
        )
    return root if os.path.basename(os.path.normpath(root)) == FOLDER else os.path.join(root, FOLDER)


def _images(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"STL-10 file {path!r} is missing (expected stl10_binary.tar.gz extracted)")
    size = os.path.getsize(path)
    if size == 0 or size % PIXELS:
        raise ValueError(f"STL-10 file {path!r} has {size} bytes, not a multiple of 3 x 96 x 96 = {PIXELS}")
    x = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, 96, 96)
    return x.transpose(0, 1, 3, 2)  # column-major storage -> (N, 3, H, W), still a view of the memmap


def _labels(path: str, n: int) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"STL-10 file {path!r} is missing")
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if y.shape != (n,) or (n and (y.min() < 1 or y.max() > 10)):
        got = f"[{y.min()}, {y.max()}]" if len(y) else "[]"
        raise ValueError(f"STL-10 file {path!r} must hold {n} labels in 1..10, got {y.shape[0]} in {got}")
    return y - 1


def load_stl10(root: str, split: str = "unlabeled", download: bool = False, image_size: int = 64) -> ImageArray:
    """STL-10 ``split`` ("train" 5000, "test" 8000, "unlabeled" 100000,
    labels -1) resized to image_size (64 as in the paper).

    Raises:
        FileNotFoundError: root or a file is missing.
        ValueError: unknown split or a malformed file.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for stl10, got {split!r}")
    if download:
        from torchvision.datasets import STL10

        os.makedirs(root, exist_ok=True)
        try:
            STL10(root, split=split, download=True)
        except Exception as error:  # noqa: BLE001
            raise RuntimeError(f"could not download STL-10 into {root!r}: {error}") from error
    folder = _folder(root)
    x = _images(os.path.join(folder, f"{split}_X.bin"))
    if split == "unlabeled":
        y = np.full(x.shape[0], -1, dtype=np.int64)
    else:
        y = _labels(os.path.join(folder, f"{split}_y.bin"), x.shape[0])
    return ImageArray(x, y, num_classes=10, image_size=image_size, name=f"stl10/{split}")
