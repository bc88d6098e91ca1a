"""CPC v2: predict the representations of patches below (and above) from the
context of the patches above (below), contrasted against every patch of the
batch.

Parts (Falcon & Cho 2020, Table 1): augmentation = AMDIM's image stages, then
the grid of overlapping patches with per-patch augmentation (csl_ext.augment
"cpc_v2" yields the grid); encoder = a ResNet with LayerNorm applied to
every patch, mean-pooled into a (B, D, 7, 7) grid; representation extraction
= a context network of masked (causal) convolutions per direction and one
1x1 prediction head per step and direction; similarity = dot product of 64-d
targets and predictions scaled by 0.1; loss = multi-step InfoNCE on the
fused op. Optimiser: Adam, betas (0.8, 0.999), eps 1e-7, weight decay 1e-5,
constant rate, as pl_bolts' CPC_v2 [2]. Evaluated features: the grid's
mean ([0]'s encoder output, patches encoded independently, mean-pooled);
``embedding="grid"`` flattens the grid instead, as pl_bolts' fine-tuner
(the code behind Falcon & Cho) [3].

- [0]: CPC v2, Hénaff et al. 2020, https://arxiv.org/abs/1905.09272
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
- [2]: pl_bolts, models/self_supervised/cpc/cpc_module.py (configure_optimizers,
  CPCTask(target_dim=64, embed_scale=0.1))
- [3]: pl_bolts, models/self_supervised/ssl_finetuner.py (``feats.view(feats.size(0), -1)``
  on the (B, C, 7, 7) output of CPC_v2.forward; ``in_features = z_dim = c * h * h``)
"""

import torch

from csl_ext import distributed
from csl_ext.encoders.cpc_resnet import CPC_RESNET_PRESETS, CPCResNet, PatchEncoder
from csl_ext.encoders.registry import ENCODERS, build_patch_encoder
from csl_ext.methods.base import Method
from csl_ext.methods.infomax_optimizer import InfomaxOptimizer
from csl_ext.methods.registry import register
from csl_ext.ops.patchify import patch_grid
from csl_ext.tasks.cpc import DIRECTIONS, CPCTask, default_offsets

EMBEDDINGS = ("mean", "grid")


@register("cpc_v2")
class CPCV2(Method):
    """CPC v2 [0].

    Args:
        image_size: S; patches of S/4 at stride S/8 give the 7x7 grid (the
            grid csl_ext.augment's "cpc_v2" pipeline cuts).
        blocks, width: the patch ResNet (CPCResNet, LayerNorm), a small
            (3, 4, 6, 3) by default; ignored when `encoder` names a preset.
        encoder: "cpc_resnet" (CPCResNet, built from `blocks` / `width` when
            `encoder_kwargs` is None), "resnet161" ([0]'s encoder,
            csl_ext.encoders.cpc_resnet.CPC_RESNET_PRESETS), or any other
            csl_ext.encoders.ENCODERS entry (not "amdim") run on every patch.
        offsets: prediction steps in rows; None: every step whose target
            shares no pixels with the context (2..6 on the 7x7 grid).
        directions: ("down", "up") as [0] (separate context networks and
            heads); ("down",) as Falcon & Cho [1] / pl_bolts.
        target_dim, scale: 64 and 0.1 ([1] / pl_bolts' CPCTask).
        context_blocks: residual masked-convolution blocks of the context net.
        optimizer, lr, weight_decay, betas, eps, warmup_steps, warmup_fraction,
            schedule, momentum: csl_ext.methods.infomax_optimizer; pl_bolts'
            Adam by default (lr: csl_ext's 2e-4; pl_bolts' constructor
            default is 1e-4).
        embedding: what `embed` returns and the online probe reads: "mean"
            (the grid's mean, (N, D): [0]) or "grid" (the flattened grid,
            (N, D * 7 * 7): pl_bolts' evaluation [3]); `feature_dim` is
            that size.
        num_classes: online probe classes (None: no probe).
        encoder_kwargs: the registry entry's arguments; torchvision entries
            get norm="layer" (LayerNorm) unless encoder_kwargs says otherwise.

    Shapes:
        views: one (N, 7, 7, 3, p, p) patch grid; embed: (N, 3, S, S) ->
        (N, D), the grid's mean, or (N, D * 7 * 7) with embedding="grid".
    """

    augmentation = "cpc_v2"
    num_views = 1

    def __init__(
        self,
        image_size=32,
        blocks=(3, 4, 6, 3),
        width=64,
        encoder: str = "cpc_resnet",
        offsets=None,
        directions=DIRECTIONS,
        target_dim=64,
        scale=0.1,
        context_blocks=5,
        optimizer="adam",
        lr=2e-4,
        weight_decay=1e-5,
        betas=(0.8, 0.999),
        eps=1e-7,
        warmup_steps=0,
        warmup_fraction=0.1,
        schedule="constant",
        momentum=0.9,
        embedding: str = "mean",
        num_classes=None,
        encoder_kwargs: dict | None = None,
    ):
        super().__init__(num_classes)
        if not isinstance(image_size, int) or image_size < 16 or image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 >= 16, got {image_size!r}")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        patch, stride = image_size // 4, image_size // 8
        if encoder != "resnet161" and encoder not in ENCODERS:
            raise ValueError(f"encoder must be 'resnet161' (CPC v2's) or one of {sorted(ENCODERS)}, got {encoder!r}")
        if encoder == "resnet161" or (encoder == "cpc_resnet" and encoder_kwargs is None):
            # CPC's own LayerNorm ResNet: [0]'s preset, or the small layout of `blocks` / `width`
            layout = (
                CPC_RESNET_PRESETS[encoder] if encoder == "resnet161" else {"blocks": tuple(blocks), "width": width}
            )
            backbone = CPCResNet(**layout)
            self.encoder = PatchEncoder(backbone, patch_size=patch, stride=stride)
            self.feature_dim = backbone.out_dim
        else:  # any csl_ext.encoders.ENCODERS entry, run on every patch
            self.encoder = build_patch_encoder(encoder, image_size, **(encoder_kwargs or {}))
            self.feature_dim = self.encoder.feature_dim
        grid_rows = patch_grid(image_size, patch, stride)  # 7
        offsets = default_offsets(grid_rows, patch, stride) if offsets is None else tuple(offsets)
        self.task = CPCTask(
            self.feature_dim,
            offsets=offsets,
            target_dim=target_dim,
            context_blocks=context_blocks,
            scale=scale,
            directions=directions,
        )
        self.embedding = embedding
        if embedding == "grid":
            self.feature_dim *= grid_rows * grid_rows  # D x 7 x 7, flattened
        self.optim_config = InfomaxOptimizer(
            optimizer, lr, weight_decay, tuple(betas), eps, warmup_steps, warmup_fraction, schedule, momentum
        )
        self._make_probe()

    def _pool(self, grid: torch.Tensor) -> torch.Tensor:
        """(N, D, 7, 7) -> (N, feature_dim) as `embedding` says."""
        return grid.mean(dim=(2, 3)) if self.embedding == "mean" else grid.flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self.encoder(x))

    def ssl_step(self, views):
        (grid,) = views  # B x nH x nW x 3 x p x p, augmented per patch
        b, n_h, n_w = grid.shape[:3]
        vectors = self.encoder.encoder(grid.flatten(0, 2))  # B*nH*nW x D
        grid_features = vectors.reshape(b, n_h, n_w, -1).permute(0, 3, 1, 2).float()  # B x D x nH x nW
        loss = self.task(grid_features, gather=distributed.is_distributed())  # every process's negatives
        return loss, self._pool(grid_features)

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        return self.optim_config.make(self.method_parameters(), total_steps)
