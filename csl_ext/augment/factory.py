"""Pick the augmentation backend: DALI when installed, torchvision twins otherwise."""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass

import numpy as np

from .config import MethodConfig
from .recipes import method_config

BACKENDS = ("auto", "dali", "torchvision")


def dali_available() -> bool:
    """True when ``nvidia.dali`` can be imported."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Augmentation:
    """A method's augmentation parameters bound to a backend.

    Attributes:
        config: the shared parameters.
        backend: ``"dali"`` or ``"torchvision"``.
    """

    config: MethodConfig
    backend: str

    def loader(
        self,
        images: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        file_root: str | None = None,
        batch_size: int = 256,
        num_workers: int = 2,
        device=None,
        seed: int = 0,
        shard_id: int | None = None,
        num_shards: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        return_images: bool = False,
    ):
        """Iterable of ``(view_0, ..., view_{V-1}[, labels])`` batches of this shard.

        Args:
            images: uint8 (N, H, W, 3), or None with ``file_root``.
            labels: int (N,) or None (then no labels are yielded).
            file_root: ImageFolder directory of JPEG/PNG files.
            batch_size: samples per step.
            num_workers: DALI threads or DataLoader workers.
            device: output device; default the current CUDA device when available,
                else the CPU. The DALI backend runs its operators there too.
            seed: augmentation and shuffle seed.
            shard_id, num_shards: default to torch.distributed rank / world size.
            shuffle, drop_last: as in DataLoader.
            return_images: CPC v2 only, also yield the image before patchify.

        Returns:
            :class:`.dali_iterator.DaliLoader` or :class:`.torchvision_twins.TorchvisionLoader`.
        """
        kw = dict(
            file_root=file_root,
            batch_size=batch_size,
            seed=seed,
            shard_id=shard_id,
            num_shards=num_shards,
            shuffle=shuffle,
            drop_last=drop_last,
            return_images=return_images,
        )
        if self.backend == "dali":
            import torch

            from .dali_iterator import DaliLoader

            if device is None:
                device_id = "auto"
            else:
                dev = torch.device(device)
                device_id = (dev.index or 0) if dev.type == "cuda" else None
            return DaliLoader(self.config, images, labels, num_threads=max(1, num_workers), device_id=device_id, **kw)
        from .torchvision_twins import TorchvisionLoader

        return TorchvisionLoader(self.config, images, labels, num_workers=num_workers, device=device, **kw)

    def transforms(self):
        """The torchvision twin as a per-image callable (PIL image -> tuple of views)."""
        from .torchvision_twins import MultiView

        return MultiView(self.config)


def make_augmentation(method: str, image_size: int, *, backend: str = "auto", **config_kwargs) -> Augmentation:
    """Augmentation of ``method`` at ``image_size`` on the best available backend.

    Args:
        method: one of :data:`.recipes.RECIPES`: ``simclr, moco_v2, byol, amdim,
            cpc_v2, yadim`` (the method registry's names) or ``eval``; another
            spelling (``"moco"``) is refused with the canonical name suggested.
        image_size: output side S (>= 16).
        backend: ``"auto"`` (DALI when installed, else torchvision with a warning),
            ``"dali"`` (ImportError when missing) or ``"torchvision"``.
        **config_kwargs: forwarded to :func:`.recipes.method_config` (``strength``,
            ``blur``, ``mean``, ``std``, ``jitter_mode``, ViewConfig overrides).

    Returns:
        :class:`Augmentation`.

    Raises:
        ValueError: unknown ``backend`` or bad config arguments.
        ImportError: ``backend="dali"`` without nvidia-dali installed.

    Example:
        >>> aug = make_augmentation("simclr", 32)
        >>> for x1, x2, y in aug.loader(images_uint8, labels, batch_size=256):
        ...     pass  # x1, x2: (B, 3, 32, 32) float32, y: (B,) int64
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    cfg = method_config(method, image_size, **config_kwargs)
    if backend == "auto":
        if dali_available():
            backend = "dali"
        else:
            warnings.warn(
                "nvidia-dali is not installed (pip install -r requirements-dali.txt); "
                "falling back to the torchvision augmentation twins",
                RuntimeWarning,
                stacklevel=2,
            )
            backend = "torchvision"
    elif backend == "dali" and not dali_available():
        raise ImportError("backend='dali' needs nvidia-dali: pip install -r requirements-dali.txt")
    return Augmentation(cfg, backend)
