"""ImageNet-style image folders: ``<root>/<split>/<class>/<image>``, streamed from disk.

The folder is scanned once into a file list (paths and labels, nothing
decoded); images are decoded only when a batch asks for them, by the
augmentation loaders during pretraining (DALI's file reader or DataLoader
workers) and by `get_batch` for evaluation, which resizes the shorter side to
image_size and centre-crops it (128 px as in the paper's ImageNet runs,
Falcon & Cho 2020, Sec. 5). Labels are the indices of the sorted class names.
"""

import os
import warnings

import numpy as np
import torch

__all__ = ["EXTENSIONS", "ImageFolder", "check_same_classes", "decode_image"]

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


def decode_image(path: str):
    """Opens and fully decodes `path` as an RGB PIL image.

    Raises:
        ValueError: naming the file, when it is missing, truncated or not an image.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # convert() decodes every pixel: a truncated file fails here
    except Exception as error:  # noqa: BLE001  (PIL raises OSError, SyntaxError, ValueError, ...)
        raise ValueError(
            f"cannot decode image {path!r}: {error} (pass --skip-bad-images / "
            "skip_bad_images=True to skip unreadable files with a warning)"
        ) from error


def _scan(path: str) -> tuple[list[str], list[str], list[int]]:
    """(classes, paths, labels) of ``path/<class>/**/<image>``, in sorted order."""
    classes = sorted(d.name for d in os.scandir(path) if d.is_dir())
    if not classes:
        raise ValueError(f"image folder {path!r} has no class subdirectories (expected <root>/<split>/<class>/<image>)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = 0
        for dirpath, dirnames, files in os.walk(os.path.join(path, name)):
            dirnames.sort()  # deterministic order on every file system
            for f in sorted(files):
                if f.lower().endswith(EXTENSIONS):
                    paths.append(os.path.join(dirpath, f))
                    found += 1
        if not found:
            raise ValueError(
                f"class folder {os.path.join(path, name)!r} holds no images with extensions "
                f"{EXTENSIONS}: remove it or add its images"
            )
        labels += [label] * found
    return classes, paths, labels


class ImageFolder(torch.utils.data.Dataset):
    """The file list of ``<root>/<split>/<class>/*`` with labels from the sorted class names.

    Only the paths (one numpy byte-string array, shared copy-on-write by
    DataLoader workers) and labels are held; images are decoded per batch.

    Args:
        root: dataset directory (e.g. the ImageNet root holding train/ and val/).
        split: subdirectory, e.g. "train" or "val".
        image_size: side of the images `get_batch` returns (128).
        skip_bad_images: an unreadable file is replaced by the next readable
            one of the list (with a warning naming it, once per process)
            instead of raising.
        num_workers: DataLoader workers that decode in parallel when the
            folder is streamed for evaluation (csl_ext.eval.extract_features).

    Raises:
        FileNotFoundError: root or root/split missing.
        ValueError: no class directories, or a class directory without images.
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        image_size: int = 128,
        *,
        skip_bad_images: bool = False,
        num_workers: int = 0,
    ):
        path = os.path.join(os.path.expanduser(root), split)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder root {root!r} does not exist")
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"image folder split {path!r} does not exist (expected <root>/<split>/<class>/<image>)"
            )
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        classes, paths, labels = _scan(path)
        self.classes, self.num_classes, self.image_size = classes, len(classes), image_size
        self.paths = np.array([p.encode() for p in paths])  # fixed-width bytes: no per-path Python object
        self.labels = np.asarray(labels, dtype=np.int64)
        self.skip_bad_images, self.num_workers = skip_bad_images, num_workers
        self.name = f"folder:{path}"
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> str:
        return self.paths[i].decode()

    def load(self, i: int):
        """(RGB PIL image, label) of sample i; an unreadable file raises, or with
        skip_bad_images is replaced by the next readable file (and its label)."""
        for j in range(i, i + len(self)):
            j %= len(self)
            try:
                return decode_image(self.path(j)), int(self.labels[j])
            except ValueError as error:
                if not self.skip_bad_images:
                    raise
                if j not in self._warned:
                    self._warned.add(j)
                    warnings.warn(
                        f"skipping unreadable image {self.path(j)!r}: {error.__cause__}", RuntimeWarning, stacklevel=2
                    )
        raise ValueError(f"{self.name}: no readable image at all")

    def _eval_tensor(self, i: int) -> tuple[torch.Tensor, int]:
        from torchvision.transforms import functional as TF

        img, label = self.load(i)
        img = TF.center_crop(TF.resize(img, self.image_size), [self.image_size, self.image_size])
        return TF.pil_to_tensor(img), label  # uint8 3 x S x S

    def get_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 (B, 3, S, S), int64 (B,)): shorter side resized to S, centre crop."""
        pairs = [self._eval_tensor(int(i)) for i in indices]
        return torch.stack([p[0] for p in pairs]), torch.as_tensor([p[1] for p in pairs], dtype=torch.int64)

    __getitems__ = get_batch

    def __getitem__(self, i):
        x, y = self.get_batch([i])
        return x[0], y[0]


def check_same_classes(train: ImageFolder, val: ImageFolder) -> None:
    """Raises ValueError when the val split's classes are not train's (labels would mean other classes)."""
    if list(train.classes) != list(val.classes):
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise ValueError(
            f"{val.name} and {train.name} must have the same class folders: only in train "
            f"{only_train[:5]}{'...' if len(only_train) > 5 else ''}, only in val "
            f"{only_val[:5]}{'...' if len(only_val) > 5 else ''}"
        )
