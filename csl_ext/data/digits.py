"""The embedded default dataset: scikit-learn's handwritten digits.

1797 grey 8x8 images of 10 digits that ship inside scikit-learn (no
download), upsampled to 32x32 RGB so that CIFAR-sized encoders apply. The
train / test split is fixed: stratified, 20% test, random_state=0 (1437 /
360 images).

- [0]: UCI optical recognition of handwritten digits (Alpaydin & Kaynak 1998)
"""

import numpy as np
import torch
import torch.nn.functional as F

from csl_ext.data.arrays import ImageArray

SPLITS = ("train", "test", "all")


def load_digits(split: str = "train", image_size: int = 32) -> ImageArray:
    """Digits as uint8 (N, 3, image_size, image_size) images with labels 0-9.

    Args:
        split: "train" (1437), "test" (360) or "all" (1797).
        image_size: output side (>= 8), 32 by default.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for digits, got {split!r}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError("the digits dataset needs scikit-learn: pip install scikit-learn") from error
    data = sk_load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32)[:, None] * (255.0 / 16.0)  # N x 1 x 8 x 8
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()  # grey -> RGB
    y = data.target.astype(np.int64)
    if split != "all":
        train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
        idx = np.sort(train if split == "train" else test)
        x, y = x[torch.as_tensor(idx)], y[idx]
    return ImageArray(x, y, num_classes=10, name=f"digits/{split}")


# Augmentation overrides for digits (csl_ext.augment.make_augmentation
# keyword arguments), used by csl-train and the examples unless the user
# gives --augment-kwargs: a horizontal flip turns a 2, 3, 4, 5, 7 or 9 into
# another symbol, and crops below half of an image upsampled from 8x8 keep
# too little of the digit.
AUGMENT_OVERRIDES = {"flip_p": 0.0, "crop_scale": (0.5, 1.0)}
