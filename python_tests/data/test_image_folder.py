"""Image folders on real JPEG / PNG files: the file list, clear errors for bad
layouts, and unreadable files (an error naming the file, or skipped with a
warning) through both loaders, never a hang or a wrong label."""

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from csl_ext.augment import make_augmentation
from csl_ext.augment.factory import dali_available
from csl_ext.data import ImageFolder, load_dataset, load_eval_splits

BACKENDS = ["torchvision", pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no DALI"))]


def test_file_list_labels_and_eval_batches(image_folder):
    root = image_folder(per_class={"train": 4}, classes=3, size=20)
    nested = os.path.join(root, "train", "class_1", "more")
    os.makedirs(nested)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(os.path.join(nested, "x.png"))
    open(os.path.join(root, "train", "class_0", "notes.txt"), "w").write("not an image")
    data = load_dataset("folder", "train", root, image_size=16)
    assert len(data) == 13 and data.classes == ["class_0", "class_1", "class_2"]
    assert data.labels.tolist() == [0] * 4 + [1] * 5 + [2] * 4
    assert data.paths.dtype.kind == "S"  # one byte-string array, not a list of Python objects
    assert data.path(8).endswith(os.path.join("class_1", "more", "x.png"))
    x, y = data.get_batch([8, 0, 12])
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8 and y.tolist() == [1, 0, 2]
    assert int(x[0].max()) == 0  # the black image of the nested folder


def test_layout_errors_name_the_problem(image_folder, tmp_path):
    root = image_folder(per_class={"train": 2, "val": 2}, classes=2)
    os.makedirs(os.path.join(root, "train", "class_9"))  # an empty class folder
    with pytest.raises(ValueError, match=r"class_9.*holds no images"):
        load_dataset("folder", "train", root)
    os.rmdir(os.path.join(root, "train", "class_9"))
    os.makedirs(tmp_path / "flat" / "train")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "flat" / "train" / "a.png")
    with pytest.raises(ValueError, match="no class subdirectories"):
        load_dataset("folder", "train", str(tmp_path / "flat"))
    with pytest.raises(FileNotFoundError, match="val"):
        load_dataset("folder", "val", str(tmp_path / "flat"))
    os.rename(os.path.join(root, "val", "class_1"), os.path.join(root, "val", "class_7"))
    with pytest.raises(ValueError, match=r"same class folders: only in train \['class_1'\], only in val \['class_7'\]"):
        load_eval_splits("folder", root, 16)


def _corrupt(root: str) -> str:
    bad = os.path.join(root, "train", "class_1", "001.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n but then garbage")
    return bad


def test_unreadable_file_in_eval_batches(image_folder):
    root = image_folder(per_class={"train": 4}, classes=2)
    bad = _corrupt(root)
    data = load_dataset("folder", "train", root, image_size=16)
    i = [data.path(j) for j in range(len(data))].index(bad)
    with pytest.raises(ValueError, match=f"cannot decode image '{bad}'"):
        data.get_batch([i])
    data = load_dataset("folder", "train", root, image_size=16, skip_bad_images=True)
    with pytest.warns(RuntimeWarning, match=f"skipping unreadable image '{bad}'"):
        x, y = data.get_batch([i])
    # replaced by the next file of the list, with that file's label
    x_next, y_next = data.get_batch([i + 1])
    assert torch.equal(x, x_next) and torch.equal(y, y_next)


def _id_folder(tmp_path, n=12, classes=3) -> tuple[str, np.ndarray]:
    """PNG images whose constant grey level encodes their index (lossless)."""
    labels = np.arange(n) % classes
    for i in range(n):
        folder = tmp_path / "ids" / "train" / f"c{labels[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 18, 3), 10 + 15 * i, np.uint8)).save(folder / f"{i:02d}.png")
    return str(tmp_path / "ids"), labels


def decode_ids(x: torch.Tensor, cfg) -> list[int]:
    """Image index of each view from its grey level (undoes the normalisation)."""
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1)
    level = ((x * std + mean) * 255).mean((1, 2, 3))
    return ((level - 10) / 15).round().long().tolist()


def _loader(backend, files, **kw):
    # crops of a constant image are that image; no colour stages: the grey level survives
    aug = make_augmentation("simclr", 16, backend=backend, jitter_p=0.0, gray_p=0.0)
    workers = {"num_threads": 1, "device_id": None} if backend == "dali" else {"num_workers": 1, "device": "cpu"}
    if backend == "dali":
        from csl_ext.augment.dali_iterator import DaliLoader as Loader
    else:
        from csl_ext.augment.torchvision_twins import TorchvisionLoader as Loader
    return aug.config, Loader(aug.config, files=files, batch_size=4, seed=0, shard_id=0, num_shards=1, **workers, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loaders_name_an_unreadable_file(backend, tmp_path):
    root, _ = _id_folder(tmp_path)
    bad = os.path.join(root, "train", "c1", "04.png")
    open(bad, "wb").write(b"garbage")
    _, loader = _loader(backend, ImageFolder(root, "train", 16))
    with pytest.raises(ValueError, match=f"cannot decode image '{bad}'"):
        list(loader)  # one worker / one DALI thread: the error comes back, no hang


@pytest.mark.parametrize("backend", BACKENDS)
def test_loaders_skip_an_unreadable_file_with_a_warning(backend, tmp_path):
    root, labels = _id_folder(tmp_path)
    bad = os.path.join(root, "train", "c1", "04.png")
    open(bad, "wb").write(b"garbage")
    files = ImageFolder(root, "train", 16, skip_bad_images=True)
    cfg, loader = _loader(backend, files)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(loader)
    if backend == "dali":  # DataLoader workers' warnings stay in the worker's stderr
        assert any(bad in str(w.message) for w in caught)
    ids = sum((decode_ids(b[0], cfg) for b in batches), [])
    got_labels = sum((b[2].tolist() for b in batches), [])
    assert len(ids) == 12 and 4 not in ids  # every step full, the bad file never read
    # 04 -> the next file of the list, c1/07
    assert sorted(set(ids)) == [i for i in range(12) if i != 4] and ids.count(7) == 2
    assert got_labels == [int(labels[i]) for i in ids]  # each image with its own label
