"""The trainer's one loader interface: batches of views from arrays or image folders.

A method never knows where its views came from: `PretrainBatches.epoch`
yields ``(views, labels, sample_ids)`` for an in-memory / memory-mapped array (digits,
CIFAR-10, STL-10: a transposed view of the dataset's array, never a copy) and
for an image folder (a file list, decoded per batch by DALI's
``fn.readers.file`` or by DataLoader workers). Each process reads its own shard
(rank / world size) of one permutation per epoch, so the shards cover the data
once per epoch. The sample ids (each image's index in the dataset) are
computed here from the same permutation (`.augment.sharding.shard_indices`)
that both loaders read in: MoCo v2 uses them to keep an image's own earlier
keys out of its negatives.

Exact resume: each epoch's loader is seeded by (seed, epoch) alone
(`epoch_seed`), and ``epoch(e, start_step)`` yields the batches of an
uninterrupted epoch from `start_step` on: the torchvision twin seeds every
sample and skips the consumed batches without decoding them; DALI replays them
(decoded, then dropped), as its random streams run through the epoch.
"""

import hashlib
from collections.abc import Iterator

import numpy as np
import torch

from csl_ext.augment.factory import Augmentation
from csl_ext.augment.sharding import shard_indices
from csl_ext.data.folder import ImageFolder

__all__ = ["PretrainBatches", "epoch_seed", "folder_subset"]


def epoch_seed(seed: int, epoch: int) -> int:
    """The augmentation seed of `epoch`: a stable hash of (seed, epoch), so an
    epoch's views do not depend on how many epochs ran in this process."""
    digest = hashlib.sha256(f"csl_ext:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def folder_subset(folder: ImageFolder, n: int) -> ImageFolder:
    """`n` files of `folder` spread evenly over its sorted list (so every class
    keeps images), as a file list of the same kind."""
    import copy

    keep = np.linspace(0, len(folder) - 1, n).round().astype(np.int64)
    part = copy.copy(folder)
    part.paths, part.labels = folder.paths[keep], folder.labels[keep]
    return part


class PretrainBatches:
    """Per-epoch loaders of one process's shard of the pretraining data.

    Args:
        dataset: an ImageArray-like (``images`` uint8 (N, 3, H, W), ``labels``)
            or an ImageFolder (file list).
        augmentation: the method's Augmentation (its backend picks the loader).
        local_batch: images per step on this process.
        rank, world_size: this process's shard.
        num_workers: DALI threads / DataLoader workers.
        device: where the batches go (and DALI runs: "mixed" decode on a GPU).
        seed: the run's seed (with the epoch, each epoch's loader seed).
        with_labels: yield the labels (for the online probe), else None.
        subset: the first `subset` array images / `subset` files spread over
            the folder; None: all.

    Raises:
        ValueError: not one full batch per process and epoch.
    """

    def __init__(
        self,
        dataset,
        augmentation: Augmentation,
        *,
        local_batch: int,
        rank: int,
        world_size: int,
        num_workers: int,
        device: torch.device,
        seed: int,
        with_labels: bool,
        subset: int | None = None,
    ):
        n = len(dataset) if subset is None else min(subset, len(dataset))
        if isinstance(dataset, ImageFolder):
            self._input = {"files": dataset if n == len(dataset) else folder_subset(dataset, n)}
        else:
            images = dataset.images[:n]
            images = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
            labels = np.asarray(dataset.labels[:n]) if with_labels else None
            # N x H x W x 3 as the loaders take it: a strided view, each batch is copied when read
            self._input = {"images": images.transpose(0, 2, 3, 1), "labels": labels}
        self.augmentation, self.num_images = augmentation, n
        self.local_batch, self.rank, self.world_size = local_batch, rank, world_size
        self.num_workers, self.device, self.seed, self.with_labels = num_workers, device, seed, with_labels
        # every process runs the same number of steps (else the last collective hangs)
        self.steps_per_epoch = (n // world_size) // local_batch
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"batch_size ({local_batch * world_size}) is larger than the {n} training images "
                f"({world_size} processes): not one full batch per epoch"
            )

    def _loader(self, epoch: int, start_step: int):
        common = dict(
            self._input,
            batch_size=self.local_batch,
            seed=epoch_seed(self.seed, epoch),
            shard_id=self.rank,
            num_shards=self.world_size,
            shuffle=True,
            drop_last=True,
            start_batch=start_step,
        )
        if self.augmentation.backend == "dali":
            from csl_ext.augment.dali_iterator import DaliLoader

            device_id = (self.device.index or 0) if self.device.type == "cuda" else None
            return DaliLoader(
                self.augmentation.config, num_threads=max(1, self.num_workers), device_id=device_id, **common
            )
        from csl_ext.augment.torchvision_twins import TorchvisionLoader

        return TorchvisionLoader(
            self.augmentation.config,
            num_workers=self.num_workers,
            device=self.device,
            persistent_workers=False,
            **common,
        )

    def sample_ids(self, epoch: int) -> torch.Tensor:
        """(steps_per_epoch * local_batch,) int64: the dataset index of every
        image this process reads in `epoch`, in order; step s holds entries
        [s * local_batch, (s + 1) * local_batch). The loaders' first (and only)
        epoch is their epoch 0 of seed epoch_seed(seed, epoch)."""
        order = shard_indices(
            self.num_images, self.rank, self.world_size, shuffle=True, seed=epoch_seed(self.seed, epoch), epoch=0
        )
        return torch.from_numpy(order[: self.steps_per_epoch * self.local_batch].copy())

    def epoch(
        self, epoch: int, start_step: int = 0
    ) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor]]:
        """``(views, labels, sample_ids)`` of steps `start_step` .. steps_per_epoch - 1 of `epoch`.

        views: num_views tensors (B, 3, S, S) (CPC v2: one (B, nH, nW, 3, p, p)
        patch grid); labels: (B,) int64, or None without labels; sample_ids:
        (B,) int64 dataset indices of the batch's images, on the CPU.
        """
        nv = self.augmentation.config.num_views
        ids = self.sample_ids(epoch).view(self.steps_per_epoch, self.local_batch)
        loader = self._loader(epoch, start_step)
        batches = iter(loader)
        try:
            for step in range(start_step, self.steps_per_epoch):
                batch = next(batches)
                yield tuple(batch[:nv]), (batch[nv] if self.with_labels else None), ids[step]
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            del batches, loader
