"""YADIM (Falcon & Cho 2020, §3.3): AMDIM's encoder, the union of the AMDIM
and CPC augmentation pipelines, and NCE between the last feature maps only.

Parts: augmentation = csl_ext.augment's "yadim" stages (flip, random resized
crop, translation, colour jitter, grayscale, normalise) on the loader, then
CPC's patch stage on the device (overlapping patches, each augmented on its
own, put back with overlaps averaged) so the encoder sees an image; encoder
= AMDIM's; representation extraction = (-1:-1); similarity = the plain
(1/sqrt(D)-scaled) dot product, no extra parameters; loss = AMDIM's NCE with
its regulariser. Optimiser: Adam, lr 2e-4, betas (0.8, 0.999), eps 1e-7,
weight decay 1e-5, no warm-up, constant rate; tclip 10: the settings of
pl_bolts [1], the code Falcon & Cho trained YADIM with.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
- [1]: pl_bolts, models/self_supervised/amdim/amdim_module.py
  (configure_optimizers, learning_rate 2e-4) and
  losses/self_supervised_learning.py (FeatureMapContrastiveTask, tclip 10)
"""
import torch
from torch import nn

from csl_ext.augment.config import PatchConfig, method_config
from csl_ext.augment.patches import augment_patches
from csl_ext.methods.amdim import AMDIM
from csl_ext.methods.registry import register
from csl_ext.tasks.yadim import PatchStage, YADIMTask


class NormalisedPatchAugment(nn.Module):
    """CPC v2's per-patch augmentation (csl_ext.augment.augment_patches: flip,
    brightness / contrast, grayscale) on patches of normalised images:
    (N, 3, p, p) -> (N, 3, p, p), un-normalised around the call."""

    def __init__(self, config: PatchConfig, mean, std):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        pixels = (patches * self.std + self.mean).clamp_(0, 1)  # back to [0, 1]
        n = pixels.shape[0]
        augmented = augment_patches(pixels.view(n, 1, 1, *pixels.shape[1:]), self.config).view_as(pixels)
        return (augmented - self.mean) / self.std


@register("yadim")
class YADIM(AMDIM):
    """YADIM [0]: AMDIM's arguments, with comparisons fixed to (-1:-1).

    Args:
        image_size, ndf, n_rkhs, depth, use_bn, reg_coef, optimizer, lr,
            weight_decay, betas, warmup_steps, warmup_fraction, schedule,
            momentum, num_classes: as in AMDIM.
        tclip: 10, pl_bolts' (AMDIM's code: 20).
        eps, warmup_steps, schedule: pl_bolts' Adam (1e-7, 0, "constant");
            AMDIM's code: 1e-8, 500, "step".
        patch_stage: apply CPC's patch stage to both views (the union
            pipeline); False leaves AMDIM's stages only.
    """

    augmentation = "yadim"

    def __init__(self, image_size=32, ndf=None, n_rkhs=None, depth=None, use_bn=False, tclip=10.0, reg_coef=0.05,
                 optimizer="adam", lr=2e-4, weight_decay=1e-5, betas=(0.8, 0.999), eps=1e-7, warmup_steps=0,
                 warmup_fraction=0.1, schedule="constant", momentum=0.9, patch_stage=True, num_classes=None):
        super().__init__(image_size, ndf, n_rkhs, depth, use_bn, "last", tclip, reg_coef, optimizer, lr, weight_decay,
                         betas, eps, warmup_steps, warmup_fraction, schedule, momentum, num_classes)
        self.patch_stage = None
        if patch_stage:
            config = method_config("yadim", image_size)
            patch = PatchConfig(patch_size=image_size // 4, stride=image_size // 8)  # the 7x7 grid
            self.patch_stage = PatchStage(patch.patch_size, patch.stride,
                                          NormalisedPatchAugment(patch, config.mean, config.std))

    def _make_task(self, comparisons, tclip, reg_coef):
        return YADIMTask(tclip, reg_coef)

    def prepare_views(self, views):
        if self.patch_stage is None or not self.training:
            return views
        with torch.no_grad():  # augmentation: no gradient to the pixels
            return tuple(self.patch_stage(v) for v in views)
