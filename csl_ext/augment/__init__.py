"""Data augmentation pipelines (part 1 of the Falcon & Cho framework).

DALI pipelines (CPU or GPU) with torchvision twins of identical parameters; use
:func:`make_augmentation`, which picks DALI when it is installed. Each method's
parameters are a recipe in :mod:`.recipes` (:data:`RECIPES`: the method registry's
names plus ``"eval"``).

- [0]: Falcon & Cho, 2020, https://arxiv.org/abs/2009.00104
"""

from .config import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ColorJitter,
    MethodConfig,
    PatchConfig,
    ViewConfig,
)
from .factory import Augmentation, dali_available, make_augmentation
from .patch_stage import NormalisedPatchAugment, PatchStage, yadim_patch_stage
from .patches import augment_patches, cpc_views
from .recipes import RECIPES, canonical_recipe, method_config
from .sharding import ShardSampler, default_shard, shard_indices

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RECIPES",
    "ColorJitter",
    "MethodConfig",
    "PatchConfig",
    "ViewConfig",
    "method_config",
    "canonical_recipe",
    "Augmentation",
    "dali_available",
    "make_augmentation",
    "augment_patches",
    "cpc_views",
    "PatchStage",
    "NormalisedPatchAugment",
    "yadim_patch_stage",
    "ShardSampler",
    "default_shard",
    "shard_indices",
]
