"""BYOL: an online network with a predictor regresses an EMA target network.

Parts (Falcon & Cho 2020, Table 1): augmentation = asymmetric SimCLR-style
views; encoder = ResNet; representation = last layer, pooled; similarity =
projector + predictor + cosine; loss = 2 - 2 cos, symmetrised over the two
views; no negatives. The target's EMA coefficient rises from tau_base = 0.996
to 1 on a cosine schedule. Optimiser: LARS, lr 0.2 x B / 256, weight decay
1.5e-6, 10 warm-up epochs, cosine; global batch norm under DDP.

- [0]: BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733
- [1]: google-deepmind/deepmind-research, byol/byol_experiment.py
  (``apply_once_fn`` per view; online and target states kept apart)
"""

import copy
import math

import torch

from csl_ext.encoders.registry import method_encoder
from csl_ext.heads import PredictionHead, ProjectionHead
from csl_ext.losses.byol import byol_loss
from csl_ext.methods.base import Method
from csl_ext.methods.budget import (
    SHORT_RUN_FRACTION,
    check_optimizer,
    method_optimizer,
    warmup_steps,
)
from csl_ext.methods.registry import register
from csl_ext.optim import lr_scale_groups

# lr per 256 images of each optimiser: LARS is [0]'s (Sec. C).
DEFAULT_BASE_LR = {"lars": 0.2, "sgd": 0.05, "adam": 1e-3}
# how the target network starts: a copy of the online network, or its own draw as [1]
TARGET_INITS = ("copy", "independent")


def byol_tau(step: int, total_steps: int, tau_base: float = 0.996) -> float:
    """tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2 ([0], Sec. 3.2)."""
    return 1 - (1 - tau_base) * (math.cos(math.pi * min(step, total_steps) / max(1, total_steps)) + 1) / 2


@register("byol")
class BYOL(Method):
    """BYOL [0].

    Each view goes through the online and the target network on its own, so
    batch norm normalises each view with its own statistics, as [1] does
    (``apply_once_fn`` per view); the target network runs in training mode and
    its BN running statistics are its own (updated by its forward passes, not
    copied from the online network), as [1] keeps ``target_state`` apart.

    Args:
        arch, cifar_stem, width: the ResNet encoder.
        encoder, encoder_kwargs: any csl_ext.encoders.ENCODERS entry and its
            arguments (None kwargs: arch / width / cifar_stem).
        hidden_dim, proj_dim: projector and predictor MLPs (4096 -> 256 in [0]).
        tau_base: initial target EMA coefficient (0.996 in [0]).
        predictor_lr_scale: the predictor's learning rate is this multiple
            of the rest of the network's (1 in [0] and [1]). [0] (Sec. 3.2)
            hypothesises that the target network's main role is to keep the
            predictor near-optimal during training, and in its predictor
            ablation (appendix) a large enough multiple of the predictor's
            rate gives reasonable accuracy with no target network (tau = 0).
            A faster predictor is the same lever with the target kept.
            examples/train_byol.py uses 10 (measured in docs/quality.md).
        target_init: ``"copy"`` (default): the target starts as a copy of the
            online network; ``"independent"``: its own random draw, as [1]
            (``_make_initial_state`` uses two rngs; its comment reports no
            significant difference from using one). In a short run the
            target stays close to where it started; on digits at 75 steps
            the copy scored higher (docs/quality.md).
        optimizer: ``"lars"`` ([0]'s, default), ``"sgd"`` or ``"adam"``.
        base_lr: lr per 256 images; None: 0.2 for LARS ([0], Sec. C), 0.05
            for SGD, 1e-3 for Adam.
        weight_decay: 1.5e-6 in [0].
        warmup_epochs: linear warm-up epochs (10 in [0]).
        short_run_fraction: the warm-up is at most this fraction of the run
            (default 0.1; None: exactly ``warmup_epochs``). tau_base is used
            as given whatever the length of the run: unlike MoCo's queue,
            nothing here needs the target to keep up with the online network,
            and a target that stays near its random initialisation is itself
            a useful target ([0], Sec. 3: predicting a fixed random network's
            projections gives 18.8% top-1 where its own features give
            1.4%). On digits at 75 steps, capping the target's memory at 10%
            of the run (as MoCo's key encoder is) scored lower on every
            protocol (docs/quality.md).
        num_classes: online probe classes (None: no probe).

    State saved in checkpoints: the target network (target_encoder,
    target_head) as ordinary (frozen) parameters and its own BN buffers.
    """

    augmentation = "byol"
    global_bn = True

    def __init__(
        self,
        arch="resnet18",
        cifar_stem=True,
        width=64,
        hidden_dim=4096,
        proj_dim=256,
        tau_base=0.996,
        predictor_lr_scale: float = 1.0,
        target_init: str = "copy",
        optimizer: str = "lars",
        base_lr: float | None = None,
        weight_decay=1.5e-6,
        warmup_epochs=10,
        short_run_fraction: float | None = SHORT_RUN_FRACTION,
        num_classes=None,
        encoder: str = "resnet18",
        encoder_kwargs: dict | None = None,
    ):
        super().__init__(num_classes)
        if not 0 <= tau_base <= 1:
            raise ValueError(f"tau_base must be in [0, 1], got {tau_base!r}")
        if isinstance(predictor_lr_scale, bool) or not (
            isinstance(predictor_lr_scale, (int, float)) and predictor_lr_scale > 0
        ):
            raise ValueError(f"predictor_lr_scale must be a number > 0, got {predictor_lr_scale!r}")
        if target_init not in TARGET_INITS:
            raise ValueError(f"target_init must be one of {TARGET_INITS}, got {target_init!r}")
        self.optimizer = check_optimizer(optimizer)

        def new_encoder():
            return method_encoder(encoder, encoder_kwargs, arch=arch, width=width, cifar_stem=cifar_stem)

        self.encoder = new_encoder()
        self.feature_dim = self.encoder.feature_dim
        self.head = ProjectionHead(self.feature_dim, hidden_dim, proj_dim, batch_norm=True)
        self.predictor = PredictionHead(proj_dim, hidden_dim)
        if target_init == "copy":
            self.target_encoder, self.target_head = copy.deepcopy(self.encoder), copy.deepcopy(self.head)
        else:  # drawn after the online parts, which stay as a "copy" run draws them
            self.target_encoder = new_encoder()
            self.target_head = ProjectionHead(self.feature_dim, hidden_dim, proj_dim, batch_norm=True)
        self.target_encoder.requires_grad_(False)
        self.target_head.requires_grad_(False)
        self.target_init = target_init
        self.tau_base, self.weight_decay = tau_base, weight_decay
        self.predictor_lr_scale = float(predictor_lr_scale)
        self.base_lr = DEFAULT_BASE_LR[optimizer] if base_lr is None else base_lr
        self.warmup_epochs, self.short_run_fraction = warmup_epochs, short_run_fraction
        self.tau = tau_base
        self._make_probe()

    def _online(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 3, H, W) -> (features (N, F), prediction (N, D))."""
        h = self.encoder(x)
        return h, self.predictor(self.head(h)).float()

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) -> target projection (N, D), in the module's mode."""
        return self.target_head(self.target_encoder(x)).float()

    def ssl_step(self, views):
        x1, x2 = views
        # one view per pass: BN statistics per view, as [1]
        h1, p1 = self._online(x1)  # N x F, N x D
        _, p2 = self._online(x2)
        z1, z2 = self._target(x1), self._target(x2)  # N x D each, no gradient
        # symmetrised: view 1 predicts view 2's target and vice versa ([0], Eq. 2)
        loss = byol_loss(p1, z2) + byol_loss(p2, z1)
        return loss, h1

    @torch.no_grad()
    def on_step_end(self, step, total_steps):
        self.tau = byol_tau(step, total_steps, self.tau_base)
        for online, target in ((self.encoder, self.target_encoder), (self.head, self.target_head)):
            # parameters only: the target's BN running statistics are its own ([1])
            for p, t in zip(online.parameters(), target.parameters()):
                t.mul_(self.tau).add_(p.detach(), alpha=1 - self.tau)

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        warmup = warmup_steps(self.warmup_epochs, steps_per_epoch, total_steps, self.short_run_fraction)
        params = self.method_parameters()
        if self.predictor_lr_scale != 1:
            # own groups only when needed: at scale 1 the optimiser's state has the layout of
            # checkpoints written before this keyword existed, so they still resume
            params = lr_scale_groups(params, self.predictor, self.predictor_lr_scale)
        return method_optimizer(
            self.optimizer,
            params,
            base_lr=self.base_lr,
            batch_size=batch_size,
            weight_decay=self.weight_decay,
            total_steps=total_steps,
            warmup=warmup,
        )
