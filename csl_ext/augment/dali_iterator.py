"""Iterator over a DALI pipeline that yields torch tensors on the pipeline's device."""

from __future__ import annotations

import contextlib
import math
from typing import Optional

import numpy as np
import torch
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from .config import MethodConfig
from .dali_pipelines import ArraySource, build_pipeline, list_image_folder
from .patches import cpc_views
from .sharding import default_shard, shard_bounds


class DaliLoader:
    """DataLoader-like iterable over a DALI augmentation pipeline.

    Each step yields a tuple ``(view_0, ..., view_{V-1}[, labels][, images])``:

    - views: float32 (B, 3, S, S), normalised; for CPC v2 the single view is the
      patch grid (B, nH, nW, 3, p, p);
    - labels: int64 (B,), only when labels were given (always for file input);
    - images: for CPC v2 with ``return_images=True``, the normalised (B, 3, S, S)
      image before patchify (for checks and visualisation).

    Tensors live on ``cuda:device_id`` for GPU pipelines, on the CPU otherwise.
    One pass over the loader is one epoch of this shard; iterating again starts the
    next epoch.

    Args:
        cfg: method parameters.
        images: uint8 (N, H, W, 3) array, or None when ``file_root`` is given.
        labels: int (N,) or None.
        file_root: ImageFolder directory (JPEG/PNG) instead of ``images``.
        batch_size: samples per step (the last may be smaller unless ``drop_last``).
        num_threads: DALI worker threads (the counterpart of DataLoader workers).
        device_id: CUDA device for "mixed"/"gpu" operators; None = CPU-only;
            "auto" = the current CUDA device when one is available.
        seed: augmentation and shuffle seed (equal seeds, equal batches).
        shard_id, num_shards: default to torch.distributed rank / world size.
        shuffle: reshuffle every epoch.
        drop_last: drop the last incomplete batch.
        return_images: CPC v2 only, also yield the image before patchify.

    Raises:
        ValueError: bad ``images`` shape/dtype, ``batch_size`` < 1, missing input.
    """

    def __init__(self, cfg: MethodConfig, images: Optional[np.ndarray] = None,
                 labels: Optional[np.ndarray] = None, *, file_root: Optional[str] = None,
                 batch_size: int = 256, num_threads: int = 2, device_id="auto", seed: int = 0,
                 shard_id: Optional[int] = None, num_shards: Optional[int] = None,
                 shuffle: bool = True, drop_last: bool = False, return_images: bool = False,
                 prefetch_queue_depth: int = 2):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads!r}")
        if return_images and cfg.patch is None:
            raise ValueError("return_images is only meaningful for cpc_v2")
        if device_id == "auto":
            device_id = torch.cuda.current_device() if torch.cuda.is_available() else None
        self.cfg, self.batch_size, self.drop_last = cfg, batch_size, drop_last
        self.return_images = return_images
        self.shard_id, self.num_shards = default_shard(shard_id, num_shards)
        self.device = torch.device("cuda", device_id) if device_id is not None else torch.device("cpu")
        self._gen = torch.Generator(device=self.device).manual_seed(seed)
        names = [f"view{i}" for i in range(cfg.num_views)] + ["labels"]
        if images is not None:
            images = _check_images(images)
            if labels is not None:
                labels = np.asarray(labels)
                if labels.shape != (len(images),):
                    raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
            self.has_labels = labels is not None
            self._source = ArraySource(images, labels, batch_size, self.shard_id, self.num_shards,
                                       shuffle=shuffle, seed=seed, drop_last=drop_last)
            self._n = len(self._source)
            pipe = build_pipeline(cfg, source=self._source, batch_size=batch_size,
                                  num_threads=num_threads, device_id=device_id, seed=seed,
                                  prefetch_queue_depth=prefetch_queue_depth)
            self._it = DALIGenericIterator(pipe, names, last_batch_policy=LastBatchPolicy.PARTIAL,
                                           auto_reset=True, prepare_first_batch=False)
        elif file_root is not None:
            _, n = list_image_folder(file_root)
            self.has_labels = True
            start, stop = shard_bounds(n, self.shard_id, self.num_shards)
            self._n = stop - start
            if drop_last:
                self._n = self._n // batch_size * batch_size
            pipe = build_pipeline(cfg, file_root=file_root, batch_size=batch_size,
                                  num_threads=num_threads, device_id=device_id, seed=seed,
                                  shard_id=self.shard_id, num_shards=self.num_shards,
                                  shuffle=shuffle, prefetch_queue_depth=prefetch_queue_depth)
            policy = LastBatchPolicy.DROP if drop_last else LastBatchPolicy.PARTIAL
            self._it = DALIGenericIterator(pipe, names, reader_name="Reader", last_batch_policy=policy,
                                           auto_reset=True, prepare_first_batch=False)
        else:
            raise ValueError("pass images (uint8 array) or file_root (directory)")

    @property
    def num_samples(self) -> int:
        """Samples this shard yields per epoch."""
        return self._n

    def __len__(self) -> int:
        return math.ceil(self._n / self.batch_size)

    def __iter__(self):
        for batch in self._it:
            out = batch[0]
            views = [out[f"view{i}"] for i in range(self.cfg.num_views)]
            extra = []
            if self.cfg.patch is not None:
                img01 = views[0]
                with self._cpu_threads():
                    views = [cpc_views(img01, self.cfg.patch, self.cfg.mean, self.cfg.std, self._gen)]
                if self.return_images:
                    m = torch.tensor(self.cfg.mean, device=img01.device).view(1, 3, 1, 1)
                    s = torch.tensor(self.cfg.std, device=img01.device).view(1, 3, 1, 1)
                    extra.append((img01 - m) / s)
            if self.has_labels:
                # labels come from a CPU reader even in a GPU pipeline
                views.append(out["labels"].view(-1).long().to(self.device, non_blocking=True))
            yield tuple(views + extra)


    @contextlib.contextmanager
    def _cpu_threads(self):
        """One torch thread for the CPU per-patch stage: DALI's threads already hold
        the cores, and OpenMP workers fighting them made it 7x slower (2 cores)."""
        if self.device.type != "cpu":
            yield
            return
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(n)


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be a uint8 array (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise ValueError("images is empty")
    return images
