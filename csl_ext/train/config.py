"""TrainConfig: every setting of a pretraining run, validated up front."""

import dataclasses
import os
from dataclasses import dataclass, field

__all__ = ["TrainConfig", "AMP_MODES"]

AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class TrainConfig:
    """Settings of one self-supervised pretraining run.

    Attributes:
        method: registry name (``simclr``, ``moco_v2``, ``byol``, ``amdim``,
            ``cpc_v2``, ``yadim``), see csl_ext.methods.METHODS.
        method_kwargs: keyword arguments of the method, e.g. ``{"width": 16}``.
        augment_kwargs: overrides of the method's augmentation, passed to
            ``csl_ext.augment.make_augmentation``, e.g. ``{"flip_p": 0.0}``
            for digits, which a horizontal flip turns into other symbols.
        dataset: ``digits`` (embedded), ``cifar10``, ``stl10`` or ``folder``.
        data_root: dataset directory (not needed for digits).
        image_size: image side S; None: the dataset's default (DEFAULT_SIZE).
        subset: pretrain on the first `subset` images of the split only (quick
            runs and tests); None: all of them.
        epochs: epochs of the schedule (the lr schedule spans all of them).
        batch_size: GLOBAL batch size, split evenly over the processes.
        num_workers: DALI threads / DataLoader workers per process.
        seed: seeds the model initialisation and, with the epoch, each
            epoch's augmentations (so an epoch's views depend only on both).
        output_dir: checkpoint, CSV log, TensorBoard events and loss plot.
        resume: continue from ``output_dir/checkpoint.pt`` when it exists.
        backend: augmentation backend, ``auto`` | ``dali`` | ``torchvision``.
        max_steps: stop (with a checkpoint) after this many global steps; the
            lr schedule still spans ``epochs`` (used by tests and for
            preemptible jobs). None: run all epochs.
        log_every: steps between CSV / TensorBoard rows.
        amp: mixed precision on CUDA: ``auto`` (bf16 when supported, else
            fp16 with a GradScaler), ``bf16``, ``fp16`` or ``off``. Ignored on
            the CPU, which always trains in fp32.
        online_probe: train a linear probe on detached features (its accuracy
            is logged) when ``num_classes`` is not in method_kwargs.
        probe_lr: Adam learning rate of the online probe.
        max_bad_steps: stop with an error after this many non-finite losses in
            a row (each one's step is skipped).
        device: ``cpu`` / ``cuda``; None: cuda:LOCAL_RANK when available.
        progress: show a tqdm progress bar on rank 0.
        tensorboard: write TensorBoard events.
        skip_bad_images: folders: an unreadable image file is skipped with a
            warning naming it (default: the run stops with an error naming it).
        knn_every: steps between online kNN evaluations of the encoder; 0: at
            the end of every epoch; None: ten times per run, evenly spaced
            (the last at the last step).
        knn_images: labelled images of the online kNN monitor (80% memory
            bank, 20% queries, from the labelled train split); 0: no monitor.
    """

    method: str = "simclr"
    method_kwargs: dict = field(default_factory=dict)
    augment_kwargs: dict = field(default_factory=dict)
    dataset: str = "digits"
    data_root: str | None = None
    image_size: int | None = None
    subset: int | None = None
    epochs: int = 10
    batch_size: int = 256
    num_workers: int = 2
    seed: int = 0
    output_dir: str = "runs/csl"
    resume: bool = False
    backend: str = "auto"
    max_steps: int | None = None
    log_every: int = 10
    amp: str = "auto"
    online_probe: bool = True
    probe_lr: float = 1e-3
    max_bad_steps: int = 10
    device: str | None = None
    progress: bool = True
    tensorboard: bool = True
    skip_bad_images: bool = False
    knn_every: int | None = None
    knn_images: int = 500

    def validate(self, world_size: int = 1) -> None:
        """Checks every setting; `world_size` is the number of processes.

        Raises:
            ValueError: naming the argument at fault (unknown method, batch
                smaller than the number of processes, missing data_root, ...).
        """
        from csl_ext.augment.factory import BACKENDS
        from csl_ext.data import DATASETS
        from csl_ext.methods import METHODS

        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        if not isinstance(self.method_kwargs, dict):
            raise ValueError(f"method_kwargs must be a dict, got {type(self.method_kwargs).__name__}")
        if not isinstance(self.augment_kwargs, dict):
            raise ValueError(f"augment_kwargs must be a dict, got {type(self.augment_kwargs).__name__}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.data_root is not None and not os.path.isdir(os.path.expanduser(self.data_root)):
            raise ValueError(f"data_root {self.data_root!r} does not exist or is not a directory")
        if self.dataset != "digits" and self.data_root is None:
            raise ValueError(f"dataset {self.dataset!r} needs data_root (the directory holding it)")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 16):
            raise ValueError(f"image_size must be None or an integer >= 16, got {self.image_size!r}")
        if self.subset is not None and (not isinstance(self.subset, int) or self.subset < 1):
            raise ValueError(f"subset must be None or an integer >= 1, got {self.subset!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.batch_size < world_size:
            raise ValueError(
                f"batch_size (global, {self.batch_size}) is smaller than the number of processes "
                f"({world_size}): every process needs at least one image"
            )
        if self.batch_size % world_size:
            raise ValueError(
                f"batch_size (global, {self.batch_size}) must be a multiple of the number of "
                f"processes ({world_size}) so that every process gets the same batch"
            )
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"max_steps must be None or an integer >= 1, got {self.max_steps!r}")
        if not isinstance(self.log_every, int) or self.log_every < 1:
            raise ValueError(f"log_every must be an integer >= 1, got {self.log_every!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if not isinstance(self.max_bad_steps, int) or self.max_bad_steps < 1:
            raise ValueError(f"max_bad_steps must be an integer >= 1, got {self.max_bad_steps!r}")
        if self.knn_every is not None and (not isinstance(self.knn_every, int) or self.knn_every < 0):
            raise ValueError(
                f"knn_every must be None (10 per run) or an integer >= 0 (0: every epoch), got {self.knn_every!r}"
            )
        if not isinstance(self.knn_images, int) or self.knn_images < 0 or 0 < self.knn_images < 10:
            raise ValueError(f"knn_images must be 0 (no kNN monitor) or an integer >= 10, got {self.knn_images!r}")
        if not self.probe_lr > 0:
            raise ValueError(f"probe_lr must be > 0, got {self.probe_lr!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Builds a config from `to_dict`'s output, ignoring unknown keys
        (checkpoints of a newer version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
