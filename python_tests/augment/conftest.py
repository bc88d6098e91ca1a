"""Small synthetic data for the augmentation tests (made here, nothing downloaded)."""

import numpy as np
import pytest
from PIL import Image


def smooth_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3): smooth random colour fields plus a little noise,
    closer to photographs than white noise (blur and crops change noise a lot)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, 4, 4, 3))
    # bilinear-ish upsampling by repeating and box-smoothing
    up = coarse.repeat(size // 4 + 1, axis=1).repeat(size // 4 + 1, axis=2)[:, :size, :size]
    k = max(1, size // 8)
    pad = np.pad(up, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
    sm = np.zeros_like(up)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            sm += pad[:, k + dy : k + dy + size, k + dx : k + dx + size]
    sm /= (2 * k + 1) ** 2
    sm += rng.normal(0, 8, sm.shape)
    return np.clip(sm, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """torchvision twins run in-process here (num_workers=0): one thread."""
    yield


@pytest.fixture(scope="session")
def images16():
    return smooth_images(64, 16, seed=1)


@pytest.fixture(scope="session")
def images32():
    return smooth_images(64, 32, seed=2)


@pytest.fixture
def make_images():
    return smooth_images


@pytest.fixture
def write_folder(tmp_path):
    """Writes images in ImageFolder layout: tmp/<name>/class_<label>/<i>.<ext>."""

    def write(images, labels, ext="png", name="data"):
        root = tmp_path / name
        for i, (img, y) in enumerate(zip(images, labels)):
            d = root / f"class_{y}"
            d.mkdir(parents=True, exist_ok=True)
            kw = {"quality": 95} if ext == "jpg" else {}
            Image.fromarray(img).save(d / f"{i:04d}.{ext}", **kw)
        return str(root)

    return write


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running statistical test")
