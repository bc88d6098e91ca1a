"""AMDIM: multiscale NCE between feature maps of two views of an image.

Parts (Falcon & Cho 2020, Table 1): augmentation = flip, random resized crop
(or translation), colour jitter, grayscale, normalise; encoder = AMDIM's
wide ResNet without BatchNorm and without padding, returning 7x7, 5x5 and
1x1 maps of n_rkhs channels; representation extraction = the comparisons
(-1:-2)+(-1:-3)+(-2:-2), both directions; similarity = dot product scaled by
1/sqrt(D) with a tanh soft clip; loss = AMDIM's NCE plus its score
regulariser, on the fused op. Optimiser: Adam, lr 2e-4.

- [0]: AMDIM, Bachman, Hjelm & Buchwalter 2019, https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""
import torch

from csl_ext import distributed
from csl_ext.encoders.amdim import AMDIM_PRESETS
from csl_ext.encoders.registry import build_map_encoder
from csl_ext.methods.adam import adam_with_warmup
from csl_ext.methods.base import Method
from csl_ext.methods.registry import register
from csl_ext.tasks.amdim import FeatureMapContrastiveTask


@register("amdim")
class AMDIM(Method):
    """AMDIM [0].

    Args:
        image_size: 32 (CIFAR-10), 64 (STL-10) or 128 (ImageNet).
        ndf, n_rkhs, depth: the encoder; None takes the published preset of
            the image size (csl_ext.encoders.AMDIM_PRESETS).
        use_bn: BatchNorm in the encoder (AMDIM: off).
        comparisons: a csl_ext.tasks.COMPARISONS preset or spec ("amdim").
        tclip, reg_coef: soft clip and score regulariser of amdim_nce (10, 0.05).
        lr, warmup_epochs: Adam's rate (2e-4) and linear warm-up.
        num_classes: online probe classes (None: no probe).
        encoder, encoder_kwargs: any csl_ext.encoders.ENCODERS entry and its
            arguments; None kwargs with "amdim": ndf / n_rkhs / depth / use_bn
            above. Another entry's last three stages' maps are embedded to
            D = encoder_kwargs["embed_dim"] (default n_rkhs, else its feature
            size) by 1x1 convs and its last map is pooled to 1x1
            (csl_ext.encoders.registry.MultiScaleMaps).

    Shapes:
        views: two (N, 3, S, S) tensors; embed: (N, 3, S, S) -> (N, n_rkhs),
        the last (1x1) map.
    """

    augmentation = "amdim"

    def __init__(self, image_size=32, ndf=None, n_rkhs=None, depth=None, use_bn=False, comparisons="amdim",
                 tclip=10.0, reg_coef=0.05, lr=2e-4, warmup_epochs=1.0, num_classes=None, encoder: str = "amdim",
                 encoder_kwargs: dict | None = None):
        super().__init__(num_classes)
        preset = _preset_for(image_size)
        if encoder == "amdim" and encoder_kwargs is None:  # today's encoder
            encoder_kwargs = dict(ndf=ndf or preset.ndf, n_rkhs=n_rkhs or preset.n_rkhs, depth=depth or preset.depth,
                                  use_bn=use_bn)
        elif encoder != "amdim" and n_rkhs is not None:
            encoder_kwargs = {"embed_dim": n_rkhs, **(encoder_kwargs or {})}
        self.encoder = build_map_encoder(encoder, image_size, **(encoder_kwargs or {}))
        self.feature_dim = self.encoder.n_rkhs
        self.task = self._make_task(comparisons, tclip, reg_coef)
        self.lr, self.warmup_epochs = lr, warmup_epochs
        self._make_probe()

    def _make_task(self, comparisons, tclip, reg_coef):
        return FeatureMapContrastiveTask(comparisons, tclip, reg_coef)

    def prepare_views(self, views):
        """Hook for views made on the device before the encoder (YADIM's patch stage)."""
        return views

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[-1].flatten(1)  # N x n_rkhs

    def ssl_step(self, views):
        x1, x2 = self.prepare_views(views)
        n = x1.shape[0]
        maps = self.encoder(torch.cat([x1, x2]))  # one pass: [(2N, D, 7, 7), (2N, D, 5, 5), (2N, D, 1, 1)]
        maps1 = [m[:n].float() for m in maps]
        maps2 = [m[n:].float() for m in maps]
        loss, reg = self.task(maps1, maps2, gather=distributed.is_distributed())  # every process's negatives
        return loss + reg, maps1[-1].flatten(1)

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        return adam_with_warmup(self.method_parameters(), self.lr, total_steps, steps_per_epoch, self.warmup_epochs)


def _preset_for(image_size):
    by_size = {preset.image_size: preset for preset in AMDIM_PRESETS.values()}
    if image_size not in by_size:
        raise ValueError(f"image_size must be one of {sorted(by_size)}, got {image_size!r}")
    return by_size[image_size]
