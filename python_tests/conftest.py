"""Shared fixtures: the devices a test runs on (CUDA skips without a GPU)."""

import pytest
import torch

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for the test: small convolutions and probes on the
    shared 2-core CI machines otherwise wait on OpenMP spin-barriers (a
    300-step MLP probe: ~50 s -> ~1 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def image_folder(tmp_path):
    """Writes an ImageNet-style folder of real files, ``<root>/<split>/class_<c>/<i>.<ext>``,
    and returns its root. Images alternate JPEG and PNG; sizes vary (non-square);
    each image is a class colour plus noise, so that classes are separable.

    Call ``image_folder(name="imgs", per_class={"train": 8, "val": 4}, classes=3, size=24)``.
    """
    import numpy as np
    from PIL import Image

    def write(name="imgs", per_class=None, classes=3, size=24, seed=0):
        per_class = per_class or {"train": 8, "val": 4}
        rng = np.random.default_rng(seed)
        root = tmp_path / name
        for split, n in per_class.items():
            for c in range(classes):
                folder = root / split / f"class_{c}"
                folder.mkdir(parents=True)
                colour = np.array([(80 * c) % 256, (160 + 50 * c) % 256, (40 * c + 30) % 256])
                for i in range(n):
                    h, w = size + (i % 3) * 4, size + ((i + 1) % 2) * 6
                    img = np.clip(colour + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
                    ext = "jpg" if i % 2 == 0 else "png"
                    Image.fromarray(img).save(folder / f"{i:03d}.{ext}", **({"quality": 90} if ext == "jpg" else {}))
        return str(root)

    return write
