"""AMDIM: multiscale NCE between feature maps of two views of an image.

Parts (Falcon & Cho 2020, Table 1): augmentation = csl_ext.augment's "amdim"
stages; encoder = AMDIM's wide ResNet without padding (BatchNorm only on
the embeddings it returns, fixup-style initialisation), returning 7x7, 5x5
and 1x1 maps of n_rkhs channels; representation extraction = the
comparisons (-1:-2)+(-1:-3)+(-2:-2), both directions; similarity = dot
product scaled by 1/sqrt(D) with a tanh soft clip at 20; loss = AMDIM's NCE
plus its score regulariser (0.05), on the fused op. Optimiser: Adam, lr
2e-4, betas (0.8, 0.999), eps 1e-8, weight decay 1e-5, 500-step warm-up,
x0.2 at 250/300 and 280/300 of the run (csl_ext.methods.infomax_optimizer).
The defaults are those of the authors' code [1] that produced [0]'s numbers.

- [0]: AMDIM, Bachman, Hjelm & Buchwalter 2019, https://arxiv.org/abs/1906.00910
- [1]: amdim-public, train.py (lr 2e-4, tclip 20), costs.py (regulariser
  5e-2, tanh clip), task_self_supervised.py (Adam, schedule, warm-up)
- [2]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""

import torch

from csl_ext import distributed
from csl_ext.encoders.amdim import AMDIM_PRESETS
from csl_ext.encoders.registry import build_map_encoder
from csl_ext.methods.base import Method
from csl_ext.methods.infomax_optimizer import InfomaxOptimizer
from csl_ext.methods.registry import register
from csl_ext.tasks.amdim import FeatureMapContrastiveTask


@register("amdim")
class AMDIM(Method):
    """AMDIM [0].

    Args:
        image_size: 32 (CIFAR-10), 64 (STL-10) or 128 (ImageNet).
        ndf, n_rkhs, depth: the encoder; None takes the preset of the image
            size (csl_ext.encoders.AMDIM_PRESETS).
        use_bn: BatchNorm inside the encoder's blocks ([1]'s ``--use_bn``: off).
        comparisons: a csl_ext.tasks.COMPARISONS preset or spec ("amdim").
        tclip: soft clip of the scores: 20 as [1]'s train.py and README
            commands; pl_bolts' FeatureMapContrastiveTask (what Falcon & Cho
            ran) clips at 10: ``tclip=10``.
        reg_coef: weight of the score regulariser (0.05 in [1] and pl_bolts).
        optimizer: ``"adam"`` ([1]), ``"lars"`` or ``"sgd"``.
        lr, weight_decay, betas, eps, warmup_steps, warmup_fraction,
            schedule, momentum: see csl_ext.methods.infomax_optimizer.
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

    def __init__(
        self,
        image_size=32,
        ndf=None,
        n_rkhs=None,
        depth=None,
        use_bn=False,
        comparisons="amdim",
        tclip=20.0,
        reg_coef=0.05,
        optimizer="adam",
        lr=2e-4,
        weight_decay=1e-5,
        betas=(0.8, 0.999),
        eps=1e-8,
        warmup_steps=500,
        warmup_fraction=0.1,
        schedule="step",
        momentum=0.9,
        num_classes=None,
        encoder: str = "amdim",
        encoder_kwargs: dict | None = None,
    ):
        super().__init__(num_classes)
        preset = _preset_for(image_size)
        if encoder == "amdim" and encoder_kwargs is None:  # today's encoder
            encoder_kwargs = dict(
                ndf=ndf or preset.ndf, n_rkhs=n_rkhs or preset.n_rkhs, depth=depth or preset.depth, use_bn=use_bn
            )
        elif encoder != "amdim" and n_rkhs is not None:
            encoder_kwargs = {"embed_dim": n_rkhs, **(encoder_kwargs or {})}
        self.encoder = build_map_encoder(encoder, image_size, **(encoder_kwargs or {}))
        self.feature_dim = self.encoder.n_rkhs
        self.task = self._make_task(comparisons, tclip, reg_coef)
        self.optim_config = InfomaxOptimizer(
            optimizer, lr, weight_decay, tuple(betas), eps, warmup_steps, warmup_fraction, schedule, momentum
        )
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
        # one pass per view, as [1] and pl_bolts: the embeddings' BatchNorm
        # normalises each view over its own batch
        maps1 = [m.float() for m in self.encoder(x1)]  # [(N, D, 7, 7), (N, D, 5, 5), (N, D, 1, 1)]
        maps2 = [m.float() for m in self.encoder(x2)]
        loss, reg = self.task(maps1, maps2, gather=distributed.is_distributed())  # every process's negatives
        return loss + reg, maps1[-1].flatten(1)

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        return self.optim_config.make(self.method_parameters(), total_steps)


def _preset_for(image_size):
    by_size = {preset.image_size: preset for preset in AMDIM_PRESETS.values()}
    if image_size not in by_size:
        raise ValueError(f"image_size must be one of {sorted(by_size)}, got {image_size!r}")
    return by_size[image_size]
