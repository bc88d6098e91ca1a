"""ImageNet-style image folders: ``<root>/<split>/<class>/<image>``, at 128 px.

Each image is decoded with PIL, its shorter side resized to image_size and
centre-cropped to image_size x image_size (128 px as in the paper's ImageNet
runs, Falcon & Cho 2020, Sec. 5) before the augmentation crops it.
"""
import os

import numpy as np
import torch

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


class ImageFolder(torch.utils.data.Dataset):
    """Images of ``<root>/<split>/<class>/*`` with labels from the sorted class names.

    Args:
        root: dataset directory (e.g. the ImageNet root holding train/ and val/).
        split: subdirectory, e.g. "train" or "val".
        image_size: output side (128).

    Raises:
        FileNotFoundError: root or root/split missing.
        ValueError: no class directories or no images.
    """

    def __init__(self, root: str, split: str = "train", image_size: int = 128):
        path = os.path.join(root, split)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder root {root!r} does not exist")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"image folder split {path!r} does not exist (expected <root>/<split>/<class>/<image>)")
        classes = sorted(d.name for d in os.scandir(path) if d.is_dir())
        if not classes:
            raise ValueError(f"image folder {path!r} has no class subdirectories")
        self.samples = []
        for label, name in enumerate(classes):
            for dirpath, _, files in sorted(os.walk(os.path.join(path, name))):
                self.samples += [(os.path.join(dirpath, f), label) for f in sorted(files) if f.lower().endswith(EXTENSIONS)]
        if not self.samples:
            raise ValueError(f"image folder {path!r} holds no images with extensions {EXTENSIONS}")
        self.classes, self.num_classes, self.image_size = classes, len(classes), image_size
        self.labels = np.array([s[1] for s in self.samples], dtype=np.int64)
        self.name = f"folder:{path}"

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, i: int) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms import functional as TF

        path = self.samples[i][0]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"cannot decode image {path!r}: {error}") from error
        img = TF.center_crop(TF.resize(img, self.image_size), [self.image_size, self.image_size])
        return TF.pil_to_tensor(img)  # uint8 3 x S x S

    def get_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([self._load(int(i)) for i in indices])
        return x, torch.as_tensor(self.labels[np.asarray(indices, dtype=np.int64)])

    __getitems__ = get_batch

    def __getitem__(self, i):
        x, y = self.get_batch([i])
        return x[0], y[0]
