"""CPC v2: predict the representations of patches below from the context of
the patches above, contrasted against every patch of the batch.

Parts (Falcon & Cho 2020, Table 1): augmentation = AMDIM's image stages, then
the grid of overlapping patches with per-patch augmentation (csl_ext.augment
"cpc_v2" yields the grid); encoder = a ResNet with LayerNorm applied to
every patch, mean-pooled into a (B, D, 7, 7) grid; representation extraction
= a context network of masked (causal) convolutions and one 1x1 prediction
head per step; similarity = dot product; loss = multi-step InfoNCE on the
fused op. Optimiser: Adam, lr 2e-4 (see csl_ext.methods.adam).

- [0]: CPC v2, Hénaff et al. 2020, https://arxiv.org/abs/1905.09272
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""
import torch

from csl_ext import distributed
from csl_ext.encoders.registry import build_patch_encoder
from csl_ext.methods.adam import adam_with_warmup
from csl_ext.methods.base import Method
from csl_ext.methods.registry import register
from csl_ext.tasks.cpc import CPCTask


@register("cpc_v2")
class CPCV2(Method):
    """CPC v2 [0].

    Args:
        image_size: S; patches of S/4 at stride S/8 give the 7x7 grid (the
            grid csl_ext.augment's "cpc_v2" pipeline cuts).
        blocks, width: the patch ResNet (CPCResNet, LayerNorm); [0] used a
            ResNet-161, far larger than the (3, 4, 6, 3) default here.
        offsets: prediction steps, rows below (1..5 on a 7x7 grid).
        context_blocks: residual masked-convolution blocks of the context net.
        lr, warmup_epochs: Adam's rate and linear warm-up.
        num_classes: online probe classes (None: no probe).
        encoder, encoder_kwargs: any csl_ext.encoders.ENCODERS entry (not
            "amdim") run on every patch, and its arguments; None kwargs with
            "cpc_resnet": blocks / width above. torchvision entries get
            norm="layer" (LayerNorm) unless encoder_kwargs says otherwise.

    Shapes:
        views: one (N, 7, 7, 3, p, p) patch grid; embed: (N, 3, S, S) ->
        (N, D), the grid's mean.
    """

    augmentation = "cpc_v2"
    num_views = 1

    def __init__(self, image_size=32, blocks=(3, 4, 6, 3), width=64, offsets=(1, 2, 3, 4, 5), context_blocks=5,
                 lr=2e-4, warmup_epochs=1.0, num_classes=None, encoder: str = "cpc_resnet",
                 encoder_kwargs: dict | None = None):
        super().__init__(num_classes)
        if not isinstance(image_size, int) or image_size < 16 or image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 >= 16, got {image_size!r}")
        if encoder == "cpc_resnet" and encoder_kwargs is None:  # today's encoder
            encoder_kwargs = {"blocks": tuple(blocks), "base_width": width}
        self.encoder = build_patch_encoder(encoder, image_size, **(encoder_kwargs or {}))  # PatchEncoder
        self.feature_dim = self.encoder.feature_dim
        self.task = CPCTask(self.feature_dim, offsets=tuple(offsets), context_blocks=context_blocks)
        self.lr, self.warmup_epochs = lr, warmup_epochs
        self._make_probe()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).mean(dim=(2, 3))  # N x D

    def ssl_step(self, views):
        (grid,) = views  # B x nH x nW x 3 x p x p, augmented per patch
        b, n_h, n_w = grid.shape[:3]
        vectors = self.encoder.encoder(grid.flatten(0, 2))  # B*nH*nW x D
        grid_features = vectors.reshape(b, n_h, n_w, -1).permute(0, 3, 1, 2).float()  # B x D x nH x nW
        loss = self.task(grid_features, gather=distributed.is_distributed())  # every process's negatives
        return loss, grid_features.mean(dim=(2, 3))

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        return adam_with_warmup(self.method_parameters(), self.lr, total_steps, steps_per_epoch, self.warmup_epochs)
