"""YADIM (Falcon & Cho 2020, §3.3): AMDIM's encoder, the union of the AMDIM
and CPC augmentation pipelines, and NCE between the last feature maps only.

Parts: augmentation = csl_ext.augment's "yadim" stages (flip, random resized
crop, translation, colour jitter, grayscale, normalise) on the loader, then
CPC's patch stage on the device (overlapping patches, each augmented on its
own, put back with overlaps averaged) so the encoder sees an image: this
project's reading of §3.3, not the paper's text (csl_ext.augment.patch_stage,
which also offers the literal one); encoder
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

from csl_ext.augment.config import method_config
from csl_ext.augment.patch_stage import yadim_patch_stage
from csl_ext.methods.amdim import AMDIM
from csl_ext.methods.registry import register
from csl_ext.tasks.yadim import YADIMTask


@register("yadim")
class YADIM(AMDIM):
    """YADIM [0]: AMDIM's arguments, with comparisons fixed to (-1:-1).

    Args:
        image_size, ndf, n_rkhs, depth, use_bn, reg_coef, optimizer, lr,
            weight_decay, betas, warmup_steps, warmup_fraction, schedule,
            momentum, num_classes, encoder, encoder_kwargs: as in AMDIM.
        tclip: 10, pl_bolts' (AMDIM's code: 20).
        eps, warmup_steps, schedule: pl_bolts' Adam (1e-7, 0, "constant");
            AMDIM's code: 1e-8, 500, "step".
        patch_stage: CPC's patch stage on both views (the union pipeline):
            True / "patches" = overlapping patches augmented on their own,
            overlaps averaged (this project's reading of §3.3); "image" =
            the same transforms once on the whole image (the literal
            union); False leaves AMDIM's stages only.
    """

    augmentation = "yadim"

    def __init__(
        self,
        image_size=32,
        ndf=None,
        n_rkhs=None,
        depth=None,
        use_bn=False,
        tclip=10.0,
        reg_coef=0.05,
        optimizer="adam",
        lr=2e-4,
        weight_decay=1e-5,
        betas=(0.8, 0.999),
        eps=1e-7,
        warmup_steps=0,
        warmup_fraction=0.1,
        schedule="constant",
        momentum=0.9,
        patch_stage=True,
        num_classes=None,
        encoder: str = "amdim",
        encoder_kwargs: dict | None = None,
    ):
        super().__init__(
            image_size,
            ndf,
            n_rkhs,
            depth,
            use_bn,
            "last",
            tclip,
            reg_coef,
            optimizer,
            lr,
            weight_decay,
            betas,
            eps,
            warmup_steps,
            warmup_fraction,
            schedule,
            momentum,
            num_classes,
            encoder=encoder,
            encoder_kwargs=encoder_kwargs,
        )
        self.patch_stage = None
        if patch_stage:
            config = method_config("yadim", image_size)
            reading = "patches" if patch_stage is True else patch_stage
            self.patch_stage = yadim_patch_stage(image_size, config.mean, config.std, reading)

    def _make_task(self, comparisons, tclip, reg_coef):
        return YADIMTask(tclip, reg_coef)

    def prepare_views(self, views):
        if self.patch_stage is None or not self.training:
            return views
        with torch.no_grad():  # augmentation: no gradient to the pixels
            return tuple(self.patch_stage(v) for v in views)
