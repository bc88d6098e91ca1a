"""BYOL: an online network with a predictor regresses an EMA target network.

Parts (Falcon & Cho 2020, Table 1): augmentation = asymmetric SimCLR-style
views; encoder = ResNet; representation = last layer, pooled; similarity =
projector + predictor + cosine; loss = 2 - 2 cos, symmetrised over the two
views; no negatives. The target's EMA coefficient rises from tau_base = 0.996
to 1 on a cosine schedule. Optimiser: LARS, lr 0.2 x B / 256, weight decay
1.5e-6, 10 warm-up epochs, cosine; global batch norm under DDP.

- [0]: BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733
"""
import copy
import math

import torch

from csl_ext.encoders.registry import method_encoder
from csl_ext.heads import PredictionHead, ProjectionHead
from csl_ext.losses.byol import byol_loss
from csl_ext.methods.base import Method
from csl_ext.methods.registry import register
from csl_ext.optim.lars import lars_warmup_cosine


def byol_tau(step: int, total_steps: int, tau_base: float = 0.996) -> float:
    """tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2 ([0], Sec. 3.2)."""
    return 1 - (1 - tau_base) * (math.cos(math.pi * min(step, total_steps) / max(1, total_steps)) + 1) / 2


@register("byol")
class BYOL(Method):
    """BYOL [0].

    Args:
        arch, cifar_stem, width: the ResNet encoder.
        encoder, encoder_kwargs: any csl_ext.encoders.ENCODERS entry and its
            arguments (None kwargs: arch / width / cifar_stem).
        hidden_dim, proj_dim: projector and predictor MLPs (4096 -> 256 in [0]).
        tau_base: initial target EMA coefficient (0.996).
        base_lr, weight_decay, warmup_epochs: LARS settings (0.2, 1.5e-6, 10).
        num_classes: online probe classes (None: no probe).

    State saved in checkpoints: the target network (target_encoder,
    target_head) as ordinary (frozen) parameters.
    """

    augmentation = "byol"
    global_bn = True

    def __init__(self, arch="resnet18", cifar_stem=True, width=64, hidden_dim=4096, proj_dim=256,
                 tau_base=0.996, base_lr=0.2, weight_decay=1.5e-6, warmup_epochs=10, num_classes=None,
                 encoder: str = "resnet18", encoder_kwargs: dict | None = None):
        super().__init__(num_classes)
        if not 0 <= tau_base <= 1:
            raise ValueError(f"tau_base must be in [0, 1], got {tau_base!r}")
        self.encoder = method_encoder(encoder, encoder_kwargs, arch=arch, width=width, cifar_stem=cifar_stem)
        self.feature_dim = self.encoder.feature_dim
        self.head = ProjectionHead(self.feature_dim, hidden_dim, proj_dim, batch_norm=True)
        self.predictor = PredictionHead(proj_dim, hidden_dim)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_head = copy.deepcopy(self.head).requires_grad_(False)
        self.tau_base, self.base_lr, self.weight_decay = tau_base, base_lr, weight_decay
        self.warmup_epochs = warmup_epochs
        self.tau = tau_base
        self._make_probe()

    def ssl_step(self, views):
        x1, x2 = views
        n = x1.shape[0]
        x = torch.cat([x1, x2])  # 2N x 3 x H x W
        h = self.encoder(x)  # 2N x F
        p = self.predictor(self.head(h)).float()  # 2N x D
        with torch.no_grad():
            z = self.target_head(self.target_encoder(x)).float()  # 2N x D
        # symmetrised: view 1 predicts view 2's target and vice versa ([0], Eq. 2)
        loss = byol_loss(p[:n], z[n:]) + byol_loss(p[n:], z[:n])
        return loss, h[:n]

    @torch.no_grad()
    def on_step_end(self, step, total_steps):
        self.tau = byol_tau(step, total_steps, self.tau_base)
        for online, target in ((self.encoder, self.target_encoder), (self.head, self.target_head)):
            for p, t in zip(online.parameters(), target.parameters()):
                t.mul_(self.tau).add_(p.detach(), alpha=1 - self.tau)
            # BN running statistics follow the online network (as in [0]'s code)
            for b, tb in zip(online.buffers(), target.buffers()):
                tb.copy_(b)

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        return lars_warmup_cosine(self.method_parameters(), self.base_lr, batch_size, self.weight_decay,
                                  total_steps, self.warmup_epochs * steps_per_epoch)
