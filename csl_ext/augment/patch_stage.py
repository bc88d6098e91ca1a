"""YADIM's patch stage: CPC's per-patch augmentation on whole images, on the device.

Falcon & Cho §3.3 build YADIM's augmentation as the union of the AMDIM and CPC
pipelines, but YADIM encodes whole images with AMDIM's encoder while CPC's pipeline
ends in a grid of patches. How CPC's patch stage joins an image pipeline is this
project's reading, not the paper's text; two readings are offered:

- ``"patches"`` (default): cut the grid of overlapping patches (S/4 at stride S/8,
  7x7), augment every patch on its own, and put the image back together with the
  overlaps averaged, so that an image encoder can follow;
- ``"image"``: the literal union, CPC's per-patch transforms applied once to the
  whole image (a 1x1 grid), with no patches cut.

``YADIM(patch_stage=False)`` leaves AMDIM's image stages only.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104 (§3.3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from csl_ext.ops.patchify import patchify, unpatchify

from .config import PatchConfig
from .patches import augment_patches

READINGS = ("patches", "image")


class PatchStage(nn.Module):
    """Cut the grid of overlapping patches, transform every patch, and put the image
    back together with the overlaps averaged.

    Args:
        patch_size, stride: e.g. 8 / 4 on 32 px (a 7x7 grid); patch_size = stride =
            S gives one patch, the whole image.
        patch_transform: maps an (N, C, p, p) batch of patches to the same shape,
            e.g. :class:`NormalisedPatchAugment`; identity if None.

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self, patch_size: int, stride: int, patch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    ):
        super().__init__()
        self.patch_size = patch_size
        self.stride = stride
        self.patch_transform = patch_transform

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = patchify(images, self.patch_size, self.stride)  # B x nH x nW x C x p x p
        if self.patch_transform is not None:
            flat = self.patch_transform(patches.flatten(0, 2))
            patches = flat.view(patches.shape)
        return unpatchify(patches, images.shape[2], images.shape[3], self.stride)


class NormalisedPatchAugment(nn.Module):
    """:func:`.patches.augment_patches` on patches of normalised images:
    (N, 3, p, p) -> (N, 3, p, p), un-normalised to [0, 1] around the call.

    Args:
        config: the per-patch stages.
        mean, std: the images' normalisation in [0, 1] units.
    """

    def __init__(self, config: PatchConfig, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.config = config
        self.fill = tuple(float(m) for m in mean)  # dropped channels become 0 after normalising
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        pixels = (patches * self.std + self.mean).clamp_(0, 1)  # back to [0, 1]
        n = pixels.shape[0]
        grid = pixels.view(n, 1, 1, *pixels.shape[1:])
        augmented = augment_patches(grid, self.config, fill=self.fill).view_as(pixels)
        return (augmented - self.mean) / self.std


def yadim_patch_config(image_size: int, reading: str = "patches") -> PatchConfig:
    """YADIM's per-patch stages: flip 0.5, brightness / contrast 0.4 with p 0.8,
    grayscale 0.25, no colour dropping (unchanged since the stage was added; CPC v2's
    own per-patch default is colour dropping, see :class:`.config.PatchConfig`).

    Args:
        image_size: S; ``"patches"`` cuts S/4 patches at stride S/8 (7x7),
            ``"image"`` one S x S patch.
        reading: ``"patches"`` or ``"image"`` (see the module docstring).
    """
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    size, stride = (image_size // 4, image_size // 8) if reading == "patches" else (image_size, image_size)
    return PatchConfig(
        patch_size=size,
        stride=stride,
        flip_p=0.5,
        color_drop_p=0.0,
        brightness=0.4,
        contrast=0.4,
        jitter_p=0.8,
        gray_p=0.25,
    )


def yadim_patch_stage(
    image_size: int, mean: Sequence[float], std: Sequence[float], reading: str = "patches"
) -> PatchStage:
    """YADIM's patch stage for normalised (B, 3, S, S) images.

    Args:
        image_size: S.
        mean, std: the images' normalisation.
        reading: ``"patches"`` (default, this project's reading of §3.3: overlapping
            patches augmented on their own, overlaps averaged) or ``"image"`` (the
            literal union: the same transforms once on the whole image).
    """
    config = yadim_patch_config(image_size, reading)
    return PatchStage(config.patch_size, config.stride, NormalisedPatchAugment(config, mean, std))
