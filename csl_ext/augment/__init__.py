"""Data augmentation pipelines (part 1 of the Falcon & Cho framework).

DALI pipelines (CPU or GPU) with torchvision twins of identical parameters; use
:func:`make_augmentation`, which picks DALI when it is installed.

- [0]: Falcon & Cho, 2020, https://arxiv.org/abs/2009.00104
"""

from .config import (CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, METHODS, ColorJitter,
                     MethodConfig, PatchConfig, ViewConfig, method_config)
from .factory import Augmentation, dali_available, make_augmentation
from .patches import augment_patches, cpc_views, patchify
from .sharding import ShardSampler, default_shard, shard_indices

__all__ = [
    "CIFAR_MEAN", "CIFAR_STD", "IMAGENET_MEAN", "IMAGENET_STD", "METHODS", "ColorJitter",
    "MethodConfig", "PatchConfig", "ViewConfig", "method_config", "Augmentation",
    "dali_available", "make_augmentation", "augment_patches", "cpc_views", "patchify",
    "ShardSampler", "default_shard", "shard_indices",
]
