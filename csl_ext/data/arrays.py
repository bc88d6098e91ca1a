"""In-memory (or memory-mapped) uint8 images with labels, fetched by batch."""

import numpy as np
import torch
import torch.nn.functional as F


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> uint8 (B, 3, size, size), antialiased bilinear."""
    if x.shape[-2:] == (size, size):
        return x
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


class ImageArray(torch.utils.data.Dataset):
    """Images as a uint8 array (N, 3, H, W) (numpy, possibly a memmap, or a
    tensor) with int64 labels (-1 for unlabelled images).

    Args:
        images: uint8 (N, 3, H, W).
        labels: (N,) class indices, -1 for unlabelled.
        num_classes: number of classes (for probes and evaluation).
        image_size: images are resized to (image_size, image_size) when
            fetched (None: keep). E.g. STL-10's 96 px -> 64 px in the paper.
        name: shown in error messages and logs.

    A batch of indices is fetched with `get_batch` (also `__getitems__`, which
    DataLoader uses with a batch sampler): (uint8 (B, 3, S, S), int64 (B,)).
    """

    def __init__(self, images, labels, num_classes: int, image_size: int | None = None, name: str = "images"):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{name}: images must have shape (N, 3, H, W), got {tuple(images.shape)}")
        if images.dtype not in (np.uint8, torch.uint8):
            raise ValueError(f"{name}: images must be uint8, got {images.dtype}")
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{name}: labels must have shape ({images.shape[0]},), got {labels.shape}")
        if labels.size and (labels.max() >= num_classes or labels.min() < -1):
            raise ValueError(f"{name}: labels must be in [-1, {num_classes - 1}], got [{labels.min()}, {labels.max()}]")
        self.images, self.labels, self.num_classes = images, labels, num_classes
        self.image_size = image_size or images.shape[-1]
        self.name = name

    def __len__(self) -> int:
        return self.images.shape[0]

    def get_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx)  # sorted reads are faster on a memmap
        x = self.images[idx[order]]
        x = torch.as_tensor(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x.contiguous()
        x = x[torch.as_tensor(np.argsort(order))]  # back to the requested order
        return resize_uint8(x, self.image_size), torch.as_tensor(self.labels[idx])

    __getitems__ = get_batch

    def __getitem__(self, i):
        x, y = self.get_batch([i])
        return x[0], y[0]

    def subset(self, indices) -> "ImageArray":
        """A new ImageArray with the given rows (loaded into memory)."""
        x, y = self.get_batch(indices)
        return ImageArray(x, y.numpy(), self.num_classes, self.image_size, self.name)
