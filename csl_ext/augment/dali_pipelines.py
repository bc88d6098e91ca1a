"""DALI pipelines for every method, built from :mod:`.dali_stages`.

Two inputs: an in-memory uint8 array (N, H, W, 3) through ``fn.external_source``,
or an ImageFolder-style directory through ``fn.readers.file`` + image decoding.
Both shard the dataset with ``shard_id`` / ``num_shards``.

The pipeline returns, in order: one CHW float32 output per view, then the int32
labels. CPC v2 views come out as [0, 1] pixels (mean 0, std 1) because patchify,
per-patch augmentation and normalisation follow in torch (see :mod:`.patches`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from . import dali_stages as st
from .config import MethodConfig
from .sharding import shard_indices


class ArraySource:
    """Batches of one shard of an in-memory dataset for ``fn.external_source``.

    Iterating again starts the next epoch (new shuffle, same on every process).

    Args:
        images: uint8 (N, H, W, 3).
        labels: int (N,) or None (then -1 labels are emitted and dropped later).
        batch_size: samples per batch; the last batch of an epoch may be smaller.
        shard_id, num_shards: this process's shard.
        shuffle, seed: per-epoch permutation, identical on all processes.
        drop_last: drop the last incomplete batch of the shard.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None,
        batch_size: int,
        shard_id: int,
        num_shards: int,
        *,
        shuffle: bool,
        seed: int,
        drop_last: bool,
    ):
        self.images = images
        self.labels = np.full(len(images), -1, np.int32) if labels is None else np.asarray(labels).astype(np.int32)
        self.batch_size, self.shard_id, self.num_shards = batch_size, shard_id, num_shards
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = -1
        self._idx = np.empty(0, np.int64)
        self._pos = 0

    def __len__(self) -> int:
        """Samples in this shard per epoch (after drop_last)."""
        n = len(shard_indices(len(self.images), self.shard_id, self.num_shards, shuffle=False, seed=0, epoch=0))
        return n // self.batch_size * self.batch_size if self.drop_last else n

    def __iter__(self):
        self.epoch += 1
        self._idx = shard_indices(
            len(self.images), self.shard_id, self.num_shards, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch
        )
        self._pos = 0
        return self

    def __next__(self):
        stop = min(self._pos + self.batch_size, len(self._idx))
        if self._pos >= len(self._idx) or (self.drop_last and stop - self._pos < self.batch_size):
            raise StopIteration
        idx = self._idx[self._pos : stop]
        self._pos = stop
        # np.ascontiguousarray: external_source wants dense samples, fancy indexing gives one copy
        imgs = np.ascontiguousarray(self.images[idx])
        return list(imgs), list(self.labels[idx].reshape(-1, 1))


def _views(images, cfg: MethodConfig, needs_resize: bool, shorter_side: int | None = None):
    s = cfg.image_size
    if cfg.method == "eval":
        # arrays whose shorter side already is the target skip the resampling pass
        resize = None if shorter_side == cfg.eval_resize else cfg.eval_resize
        return [st.eval_view(images, s, resize, cfg.mean, cfg.std)]
    # CPC: [0, 1] pixels out, normalised after the per-patch stage
    mean, std = ((0.0,) * 3, (1.0,) * 3) if cfg.patch is not None else (cfg.mean, cfg.std)
    # AMDIM flips each image once for all its views
    shared_mirror = st.flip_coin(cfg.shared_flip_p) if cfg.shared_flip_p > 0 else None
    return [st.view(images, v, s, mean, std, needs_resize=needs_resize, shared_mirror=shared_mirror) for v in cfg.views]


def build_pipeline(
    cfg: MethodConfig,
    *,
    source: ArraySource | None = None,
    file_root: str | None = None,
    files: Sequence[str] | None = None,
    file_labels: Sequence[int] | None = None,
    batch_size: int,
    num_threads: int = 2,
    device_id: int | None = None,
    seed: int = 0,
    shard_id: int = 0,
    num_shards: int = 1,
    shuffle: bool = True,
    prefetch_queue_depth: int = 2,
):
    """Build (not yet built) the DALI pipeline of ``cfg``.

    Args:
        cfg: method parameters from :func:`.config.method_config`.
        source: in-memory input; exactly one of ``source`` / ``file_root`` / ``files``.
        file_root: ImageFolder directory of JPEG/PNG files, sharded and shuffled by the
            reader (``shard_id`` / ``num_shards``, ``random_shuffle``, ``stick_to_shard``).
        files, file_labels: an explicit list of image paths and their labels, read in
            this order (the caller has already sharded and permuted it, e.g. with
            :func:`.sharding.shard_indices`, so both backends read the same samples).
        batch_size: maximum batch size.
        num_threads: DALI CPU worker threads.
        device_id: CUDA device, or None for a CPU-only pipeline.
        seed: pipeline seed; equal seeds give equal augmentations.
        shard_id, num_shards: reader sharding (the array source shards itself).
        shuffle: shuffle files (reader) each epoch.

    Returns:
        ``nvidia.dali.Pipeline`` with outputs ``view0 .. view{V-1}, labels``:
        views (B, 3, S, S) float32, labels (B, 1) int32.
    """
    if sum(x is not None for x in (source, file_root, files)) != 1:
        raise ValueError("pass exactly one of source (array), file_root (directory) or files (list)")
    if files is not None and (file_labels is None or len(file_labels) != len(files)):
        raise ValueError("files needs file_labels of the same length")
    gpu = device_id is not None

    @pipeline_def(enable_conditionals=True)
    def _pipe():
        if file_root is not None or files is not None:
            if files is not None:
                encoded, labels = fn.readers.file(
                    files=list(files),
                    labels=[int(y) for y in file_labels],
                    random_shuffle=False,
                    pad_last_batch=True,
                    name="Reader",
                )
            else:
                encoded, labels = fn.readers.file(
                    file_root=file_root,
                    shard_id=shard_id,
                    num_shards=num_shards,
                    random_shuffle=shuffle,
                    stick_to_shard=True,
                    pad_last_batch=True,
                    name="Reader",
                )
            # nvJPEG on the GPU ("mixed": CPU parse, GPU decode), the CPU decoder otherwise
            images = fn.decoders.image(encoded, device="mixed" if gpu else "cpu", output_type=types.RGB)
            needs_resize, shorter = True, None
        else:
            images, labels = fn.external_source(
                source=source,
                num_outputs=2,
                batch=True,
                cycle="raise",
                layout=["HWC", ""],
                dtype=[types.UINT8, types.INT32],
            )
            if gpu:
                images = images.gpu()
            h, w = source.images.shape[1:3]
            needs_resize, shorter = (h, w) != (cfg.image_size, cfg.image_size), min(h, w)
        return (*_views(images, cfg, needs_resize, shorter), labels)

    return _pipe(
        batch_size=batch_size,
        num_threads=num_threads,
        device_id=device_id,
        seed=seed,
        prefetch_queue_depth=prefetch_queue_depth,
        exec_dynamic=True,
    )
