"""Iterator over a DALI pipeline that yields torch tensors on the pipeline's device."""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from .config import MethodConfig
from .dali_pipelines import ArraySource, build_pipeline
from .patches import cpc_views
from .sharding import default_shard, shard_bounds, shard_indices


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
        files: a scanned file list (:class:`csl_ext.data.ImageFolder`) instead of
            ``images``; each epoch reads this shard's files in the order of
            :func:`.sharding.shard_indices` (the torchvision twin's order) through
            ``fn.readers.file``, decoded with ``device="mixed"`` on a GPU.
        batch_size: samples per step (the last may be smaller unless ``drop_last``).
        num_threads: DALI worker threads (the counterpart of DataLoader workers).
        device_id: CUDA device for "mixed"/"gpu" operators; None = CPU-only;
            "auto" = the current CUDA device when one is available.
        seed: augmentation and shuffle seed (equal seeds, equal batches).
        shard_id, num_shards: default to torch.distributed rank / world size.
        shuffle: reshuffle every epoch.
        drop_last: drop the last incomplete batch.
        return_images: CPC v2 only, also yield the image before patchify.
        start_batch: begin the first epoch at this batch (a resumed epoch); the
            batches before it are replayed and discarded, so the augmentations
            after it are those of the uninterrupted epoch.
        skip_bad_images: replace an unreadable file by the next readable one
            with a warning (default: ValueError naming it).

    Raises:
        ValueError: bad ``images`` shape/dtype, ``batch_size`` < 1, missing input.
    """

    def __init__(
        self,
        cfg: MethodConfig,
        images: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        file_root: str | None = None,
        files=None,
        batch_size: int = 256,
        num_threads: int = 2,
        device_id="auto",
        seed: int = 0,
        shard_id: int | None = None,
        num_shards: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        return_images: bool = False,
        prefetch_queue_depth: int = 2,
        start_batch: int = 0,
        skip_bad_images: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads!r}")
        if return_images and cfg.patch is None:
            raise ValueError("return_images is only meaningful for cpc_v2")
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch!r}")
        if device_id == "auto":
            device_id = torch.cuda.current_device() if torch.cuda.is_available() else None
        self.cfg, self.batch_size, self.drop_last = cfg, batch_size, drop_last
        self.return_images, self.start_batch = return_images, start_batch
        self.shard_id, self.num_shards = default_shard(shard_id, num_shards)
        self.device = torch.device("cuda", device_id) if device_id is not None else torch.device("cpu")
        self._gen = torch.Generator(device=self.device).manual_seed(seed)
        self._names = [f"view{i}" for i in range(cfg.num_views)] + ["labels"]
        self._pipe_kwargs = dict(
            batch_size=batch_size,
            num_threads=num_threads,
            device_id=device_id,
            prefetch_queue_depth=prefetch_queue_depth,
        )
        self.seed, self.shuffle, self._epoch = seed, shuffle, 0
        self._files = None
        if images is not None:
            images = _check_images(images)
            if labels is not None:
                labels = np.asarray(labels)
                if labels.shape != (len(images),):
                    raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
            self.has_labels = labels is not None
            self._source = ArraySource(
                images,
                labels,
                batch_size,
                self.shard_id,
                self.num_shards,
                shuffle=shuffle,
                seed=seed,
                drop_last=drop_last,
            )
            self._n = len(self._source)
            pipe = build_pipeline(cfg, source=self._source, seed=seed, **self._pipe_kwargs)
            self._it = DALIGenericIterator(
                pipe, self._names, last_batch_policy=LastBatchPolicy.PARTIAL, auto_reset=True, prepare_first_batch=False
            )
        elif files is not None or file_root is not None:
            from .torchvision_twins import folder_files

            self._files = files if files is not None else folder_files(file_root, skip_bad_images)
            self.has_labels = True
            self._skip_bad = skip_bad_images or getattr(self._files, "skip_bad_images", False)
            self._bad: set[int] = set()
            start, stop = shard_bounds(len(self._files), self.shard_id, self.num_shards)
            self._n = stop - start
            if drop_last:
                self._n = self._n // batch_size * batch_size
        else:
            raise ValueError("pass images (uint8 array), file_root (directory) or files (ImageFolder)")

    @property
    def num_samples(self) -> int:
        """Samples this shard yields per epoch."""
        return self._n

    def __len__(self) -> int:
        return math.ceil(self._n / self.batch_size)

    def __iter__(self):
        """One epoch; with ``start_batch`` > 0 (first epoch only) the batches before it
        are made and discarded, so the rest equal those of an uninterrupted epoch."""
        skip, self.start_batch = self.start_batch, 0
        batches = self._array_batches() if self._files is None else self._file_batches()
        for i, out in enumerate(batches):
            if i >= skip or self.cfg.patch is not None:  # the patch stage draws from self._gen: replay it too
                batch = self._to_tuple(out)
                if i >= skip:
                    yield batch

    def _array_batches(self):
        for batch in self._it:
            yield batch[0]

    def _file_batches(self):
        """This shard's files in this epoch's order (the permutation of
        :func:`.sharding.shard_indices`, as the torchvision twin's sampler), read by
        ``fn.readers.file``; a pipeline error is traced to the file that caused it."""
        epoch, self._epoch = self._epoch, self._epoch + 1
        order = shard_indices(
            len(self._files), self.shard_id, self.num_shards, shuffle=self.shuffle, seed=self.seed, epoch=epoch
        )[: self._n]
        order = [self._replacement(i) if i in self._bad else int(i) for i in order]
        pos, policy = 0, LastBatchPolicy.DROP if self.drop_last else LastBatchPolicy.PARTIAL
        while pos < len(order):
            pipe = build_pipeline(
                self.cfg,
                files=[self._files.path(i) for i in order[pos:]],
                file_labels=self._files.labels[order[pos:]],
                seed=(self.seed * 1_000_003 + epoch) % 2**31,
                **self._pipe_kwargs,
            )
            it = DALIGenericIterator(
                pipe, self._names, reader_name="Reader", last_batch_policy=policy, prepare_first_batch=False
            )
            try:
                for batch in it:
                    pos += self.batch_size
                    yield batch[0]
                return
            except RuntimeError as error:
                bad = self._find_unreadable(order, pos, error)  # raises unless skip_bad_images
                order = [self._replacement(i) if i in bad else i for i in order]
            finally:
                del it, pipe

    def _find_unreadable(self, order, pos: int, error: RuntimeError) -> set[int]:
        """The unreadable files of the batches DALI may have been reading at `pos`;
        raises ValueError naming the first one, unless skip_bad_images (then warns)."""
        from csl_ext.data.folder import decode_image

        window = order[pos : pos + (self._pipe_kwargs["prefetch_queue_depth"] + 2) * self.batch_size]
        bad = set()
        for i in window:
            try:
                decode_image(self._files.path(i))
            except ValueError as decode_error:
                if not self._skip_bad:
                    raise decode_error from error
                warnings.warn(
                    f"skipping unreadable image {self._files.path(i)!r}: {decode_error.__cause__}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                bad.add(i)
        if not bad:
            raise RuntimeError(
                f"DALI failed while reading files {self._files.path(window[0])!r} .. "
                f"{self._files.path(window[-1])!r} (PIL reads them all): {error}"
            ) from error
        self._bad |= bad
        return bad

    def _replacement(self, i: int) -> int:
        """The next readable file after a bad one (its label comes with it)."""
        from csl_ext.data.folder import decode_image

        for j in range(i + 1, i + len(self._files)):
            j %= len(self._files)
            if j in self._bad:
                continue
            try:
                decode_image(self._files.path(j))
                return j
            except ValueError:
                self._bad.add(j)
        raise ValueError("no readable image in the folder")

    def _to_tuple(self, out) -> tuple:
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
        return tuple(views + extra)

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
