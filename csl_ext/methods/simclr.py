"""SimCLR: two augmented views, a ResNet, a 2-layer MLP head and NT-Xent.

Parts (Falcon & Cho 2020, Table 1): augmentation = crop + flip + colour jitter
+ grayscale (+ blur); encoder = ResNet; representation = last layer, pooled;
similarity = projection head + cosine; loss = NT-Xent over the 2N - 2
negatives of the global batch. Optimiser: LARS, lr 0.3 x B / 256, weight
decay 1e-6, 10 warm-up epochs then cosine decay [0, Sec. B.1]; global batch
norm under DDP.

- [0]: SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709
- [1]: google-research/simclr, model_util.py (projection head, LARS
  exclusions) and README (CIFAR-10: batch 512, lr 1.0, temperature 0.5)
"""

import torch

from csl_ext import distributed
from csl_ext.encoders.registry import method_encoder
from csl_ext.heads import SimCLRProjectionHead
from csl_ext.losses.nt_xent import nt_xent
from csl_ext.methods.base import Method
from csl_ext.methods.budget import (
    SHORT_RUN_FRACTION,
    check_optimizer,
    method_optimizer,
    warmup_steps,
)
from csl_ext.methods.registry import register

# lr per 256 images of each optimiser: LARS is [0]'s (B.1); its trust ratio
# makes the step relative to each layer's norm, so SGD and Adam need their own.
DEFAULT_BASE_LR = {"lars": 0.3, "sgd": 0.06, "adam": 1e-3}


@register("simclr")
class SimCLR(Method):
    """SimCLR [0].

    Args:
        arch, cifar_stem, width: the ResNet encoder (see ResNetEncoder).
        hidden_dim: projection head hidden width; None (default): the
            encoder's feature size, as [1]'s code (``mid_dim``). The head is
            [1]'s: BN after both linear layers, no bias and no BN shift on the
            output (`csl_ext.heads.SimCLRProjectionHead`).
        encoder, encoder_kwargs: any csl_ext.encoders.ENCODERS entry and its
            arguments, e.g. "wide_resnet50_2", {"width": 0.125}; None kwargs:
            arch / width / cifar_stem above (see registry.method_encoder).
        proj_dim: projection size (128 in [0]).
        temperature: NT-Xent temperature (0.5 for CIFAR-10 in [0], B.9; 0.1
            with large batches on ImageNet).
        optimizer: ``"lars"`` ([0]'s, default), ``"sgd"`` or ``"adam"``
            (csl_ext.optim.make_optimizer), e.g. to compare methods with one
            optimiser at an equal budget.
        base_lr: lr per 256 images (lr = base_lr x B / 256); None: 0.3 for
            LARS ([0], B.1), 0.06 for SGD, 1e-3 for Adam.
        weight_decay: 1e-6 in [0] (LARS; [1]'s CIFAR-10 command uses 1e-4).
        warmup_epochs: linear warm-up epochs (10 in [0]).
        short_run_fraction: the warm-up is at most this fraction of the run
            (default 0.1; None: exactly ``warmup_epochs``). [0] warms up for
            10 of 100-1000 epochs; in a 75-step run 10 epochs of digits are
            50 steps, so the rate would still be rising for most of the run.
            The cap does not bind for runs of 100 epochs or more.
        num_classes: online probe classes (None: no probe).

    Shapes:
        views: two (N, 3, H, W) tensors; embed: (N, 3, H, W) -> (N, feature_dim).
    """

    augmentation = "simclr"
    global_bn = True

    def __init__(
        self,
        arch="resnet18",
        cifar_stem=True,
        width=64,
        hidden_dim: int | None = None,
        proj_dim=128,
        temperature=0.5,
        optimizer: str = "lars",
        base_lr: float | None = None,
        weight_decay=1e-6,
        warmup_epochs=10,
        short_run_fraction: float | None = SHORT_RUN_FRACTION,
        num_classes=None,
        encoder: str = "resnet18",
        encoder_kwargs: dict | None = None,
    ):
        super().__init__(num_classes)
        self.optimizer = check_optimizer(optimizer)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.encoder = method_encoder(encoder, encoder_kwargs, arch=arch, width=width, cifar_stem=cifar_stem)
        self.feature_dim = self.encoder.feature_dim
        self.head = SimCLRProjectionHead(self.feature_dim, proj_dim, hidden_dim)
        self.temperature, self.weight_decay = temperature, weight_decay
        self.base_lr = DEFAULT_BASE_LR[optimizer] if base_lr is None else base_lr
        self.warmup_epochs, self.short_run_fraction = warmup_epochs, short_run_fraction
        self._make_probe()

    def ssl_step(self, views):
        x1, x2 = views
        n = x1.shape[0]
        # one pass over both views: batch norm sees the 2N views, as in [1]'s code
        h = self.encoder(torch.cat([x1, x2]))  # 2N x F
        z = self.head(h)  # 2N x proj_dim
        loss = nt_xent(z[:n].float(), z[n:].float(), self.temperature, gather=distributed.is_distributed())
        return loss, h[:n]

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        warmup = warmup_steps(self.warmup_epochs, steps_per_epoch, total_steps, self.short_run_fraction)
        return method_optimizer(
            self.optimizer,
            self.method_parameters(),
            base_lr=self.base_lr,
            batch_size=batch_size,
            weight_decay=self.weight_decay,
            total_steps=total_steps,
            warmup=warmup,
        )
