"""YADIM (Falcon & Cho 2020, §3.3): AMDIM's encoder, the union of the AMDIM
and CPC augmentation pipelines, and NCE between the last feature maps only.

- [0]: Falcon & Cho 2020, "A Framework for Contrastive Self-Supervised
  Learning and Designing a New Approach", https://arxiv.org/abs/2009.00104

The paper's finding is that AMDIM's multiscale comparisons matter little
once the encoder is strong: comparing the last maps, (-1:-1), with a plain
dot product and no extra parameters does as well.
"""
from collections.abc import Callable, Sequence

import torch
from torch import nn

from csl_ext.ops.patchify import patchify, unpatchify
from csl_ext.tasks.amdim import FeatureMapContrastiveTask

__all__ = ["YADIMTask", "PatchStage", "UnionPipeline"]


class YADIMTask(FeatureMapContrastiveTask):
    """FeatureMapContrastiveTask with the comparison (-1:-1): amdim_nce of the
    last (1x1) map of one view against the last map of the other, both ways.
    No parameters of its own."""

    def __init__(self, tclip: float = 10.0, reg_coef: float = 0.05, generator: torch.Generator | None = None):
        super().__init__("last", tclip, reg_coef, bidirectional=True, generator=generator, num_maps=None)


class PatchStage(nn.Module):
    """CPC's patch stage on a batch of images: cut the grid of overlapping
    patches, augment every patch independently, and put the image back
    together (overlaps averaged), so that an image encoder such as AMDIM's
    can follow.

    Args:
        patch_size, stride: e.g. 8 / 4 on 32 px (a 7x7 grid).
        patch_transform: maps an (N, C, p, p) batch of patches to the same
            shape, e.g. per-patch colour jitter; identity if None.

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, patch_size: int, stride: int, patch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
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


class UnionPipeline(nn.Module):
    """YADIM's augmentation: AMDIM's stages in order, then CPC's patch stage.

    Args:
        amdim_stages: callables on (B, C, H, W) batches, e.g. AMDIM's random
            resized crop, flip, colour jitter, grayscale and normalisation
            from csl_ext.augment or torchvision.transforms.v2.
        patch_stage: a PatchStage, e.g. PatchStage(8, 4, jitter) on 32 px.
    """

    def __init__(self, amdim_stages: Sequence[Callable[[torch.Tensor], torch.Tensor]], patch_stage: PatchStage):
        super().__init__()
        self.amdim_stages = list(amdim_stages)
        self.patch_stage = patch_stage

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        for stage in self.amdim_stages:
            images = stage(images)
        return self.patch_stage(images)
