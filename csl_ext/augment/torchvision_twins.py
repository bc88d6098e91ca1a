"""torchvision twins of the DALI pipelines: same :class:`.config.MethodConfig`, same
stage order, same outputs. Used as the fallback when DALI is missing and as the
reference in the parity tests.
"""

from __future__ import annotations

import contextlib
import math
from typing import List, Optional

import numpy as np
import torch
from PIL import Image
from torchvision import datasets
from torchvision import transforms as T

from .config import MethodConfig, ViewConfig
from .patches import cpc_views
from .sharding import ShardSampler, default_shard


_INTERPOLATION = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}


def view_transform(cfg: ViewConfig, size: int, mean, std, *, needs_resize: bool = True) -> T.Compose:
    """PIL image -> float32 (3, S, S) tensor, normalised by mean/std ([0, 1] units)."""
    t: List = []
    if cfg.crop_scale is not None:
        t.append(T.RandomResizedCrop(size, scale=cfg.crop_scale, ratio=cfg.crop_ratio,
                                     interpolation=_INTERPOLATION[cfg.interpolation]))
    elif needs_resize:
        t.append(T.Resize((size, size)))
    if cfg.translate_enabled:
        translate = T.RandomCrop(size, padding=cfg.translate, padding_mode="reflect")
        t.append(translate if cfg.translate_p >= 1 else T.RandomApply([translate], p=cfg.translate_p))
    if cfg.flip_p > 0:
        t.append(T.RandomHorizontalFlip(cfg.flip_p))
    j = cfg.jitter
    if cfg.jitter_p > 0 and j.active:
        t.append(T.RandomApply([T.ColorJitter(j.brightness, j.contrast, j.saturation, j.hue)],
                               p=cfg.jitter_p))
    if cfg.gray_p > 0:
        t.append(T.RandomGrayscale(cfg.gray_p))
    if cfg.blur_enabled:
        t.append(T.RandomApply([T.GaussianBlur(cfg.blur_kernel, sigma=cfg.blur_sigma)], p=cfg.blur_p))
    if cfg.solarize_p > 0:
        t.append(T.RandomSolarize(128, p=cfg.solarize_p))
    t += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(t)


def eval_transform(size: int, resize_shorter: int, mean, std) -> T.Compose:
    """Resize the shorter side, centre crop S x S, normalise."""
    return T.Compose([T.Resize(resize_shorter), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])


class MultiView:
    """Callable PIL image -> tuple of views (and the CPC image when asked).

    For CPC v2 the single view is the patch grid (nH, nW, 3, p, p) after per-patch
    augmentation, drawn from torch's global RNG (seeded per DataLoader worker). With
    ``cfg.shared_flip_p`` the image is flipped once before all views (AMDIM).
    """

    def __init__(self, cfg: MethodConfig, *, needs_resize: bool = True, return_images: bool = False):
        self.cfg, self.return_images = cfg, return_images
        if cfg.method == "eval":
            self.transforms = [eval_transform(cfg.image_size, cfg.eval_resize, cfg.mean, cfg.std)]
        else:
            mean, std = ((0.0,) * 3, (1.0,) * 3) if cfg.patch is not None else (cfg.mean, cfg.std)
            self.transforms = [view_transform(v, cfg.image_size, mean, std, needs_resize=needs_resize)
                               for v in cfg.views]

    def __call__(self, img: Image.Image):
        if self.cfg.shared_flip_p > 0 and torch.rand(()) < self.cfg.shared_flip_p:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        views = [t(img) for t in self.transforms]
        if self.cfg.patch is None:
            return tuple(views)
        img01 = views[0].unsqueeze(0)
        p = self.cfg.patch
        grid = cpc_views(img01, p, self.cfg.mean, self.cfg.std)[0]
        if self.return_images:
            m = torch.tensor(self.cfg.mean).view(3, 1, 1)
            s = torch.tensor(self.cfg.std).view(3, 1, 1)
            return grid, (views[0] - m) / s
        return (grid,)


class ArrayDataset(torch.utils.data.Dataset):
    """In-memory uint8 (N, H, W, 3) images (+ labels) -> (views..., label)."""

    def __init__(self, images: np.ndarray, labels: Optional[np.ndarray], transform: MultiView):
        self.images = images
        self.labels = np.full(len(images), -1, np.int64) if labels is None else np.asarray(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return (*self.transform(Image.fromarray(self.images[i])), int(self.labels[i]))


class _FolderDataset(datasets.ImageFolder):
    def __getitem__(self, i):
        img, label = super().__getitem__(i)
        return (*img, label)


class TorchvisionLoader:
    """DataLoader with the same inputs, sharding and outputs as :class:`.dali_iterator.DaliLoader`.

    Each step yields ``(view_0, ..., view_{V-1}[, labels][, images])`` on ``device``
    (float32 views, int64 labels), see DaliLoader. ``num_workers`` DataLoader worker
    processes take the place of DALI's threads.
    """

    def __init__(self, cfg: MethodConfig, images: Optional[np.ndarray] = None,
                 labels: Optional[np.ndarray] = None, *, file_root: Optional[str] = None,
                 batch_size: int = 256, num_workers: int = 2, device=None, seed: int = 0,
                 shard_id: Optional[int] = None, num_shards: Optional[int] = None,
                 shuffle: bool = True, drop_last: bool = False, return_images: bool = False,
                 persistent_workers: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
        if return_images and cfg.patch is None:
            raise ValueError("return_images is only meaningful for cpc_v2")
        self.cfg, self.seed, self.return_images = cfg, seed, return_images
        self.device = torch.device(device) if device is not None else (
            torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        if images is not None:
            images = np.asarray(images)
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(f"images must be a uint8 array (N, H, W, 3), got {images.dtype} {images.shape}")
            needs_resize = images.shape[1:3] != (cfg.image_size, cfg.image_size)
            ds = ArrayDataset(images, labels, MultiView(cfg, needs_resize=needs_resize,
                                                        return_images=return_images))
            self.has_labels = labels is not None
        elif file_root is not None:
            ds = _FolderDataset(file_root, transform=MultiView(cfg, return_images=return_images))
            self.has_labels = True
        else:
            raise ValueError("pass images (uint8 array) or file_root (directory)")
        sid, ns = default_shard(shard_id, num_shards)
        self.sampler = ShardSampler(len(ds), sid, ns, shuffle=shuffle, seed=seed)
        self.num_workers = num_workers
        self.loader = torch.utils.data.DataLoader(
            ds, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers,
            drop_last=drop_last, generator=torch.Generator().manual_seed(seed),
            persistent_workers=persistent_workers and num_workers > 0,
            pin_memory=self.device.type == "cuda")
        self._epoch = 0

    @property
    def num_samples(self) -> int:
        n = len(self.sampler)
        return n // self.loader.batch_size * self.loader.batch_size if self.loader.drop_last else n

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.loader.batch_size)

    def __iter__(self):
        # without workers the transforms draw from the global RNG: seed it per epoch
        # inside fork_rng so the caller's RNG state is left alone
        ctx = torch.random.fork_rng() if self.num_workers == 0 else contextlib.nullcontext()
        with ctx:
            if self.num_workers == 0:
                torch.manual_seed(self.seed * 1000003 + self._epoch)
            self._epoch += 1
            nv = self.cfg.num_views
            for batch in self.loader:
                batch = [t.to(self.device, non_blocking=True) for t in batch]
                views, labels, extra = batch[:nv], batch[-1].long(), batch[nv:-1]
                yield tuple(views + ([labels] if self.has_labels else []) + extra)
