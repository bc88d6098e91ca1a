"""The optimiser of AMDIM, CPC v2 and YADIM: Adam with the reference code's
betas / eps / weight decay, a linear warm-up, then a constant rate or the
reference's step decay; LARS or SGD through the same call for equal-budget
comparisons with SimCLR / MoCo / BYOL.

- [0]: amdim-public, task_self_supervised.py: Adam(betas=(0.8, 0.999),
  eps=1e-8, weight_decay=1e-5), lr 2e-4 (train.py); MultiStepLR x0.2 at
  epochs 250 and 280 of 300 (CIFAR-10, STL-10); the lr warmed up linearly
  over the first 500 updates (``_train``).
- [1]: pl_bolts (the code of Falcon & Cho 2020), amdim_module.py and
  cpc_module.py ``configure_optimizers``: Adam(betas=(0.8, 0.999),
  eps=1e-7, weight_decay=1e-5), no warm-up, no schedule (the MultiStepLR
  is commented out).
"""

from dataclasses import dataclass

import torch

from csl_ext.optim import make_optimizer
from csl_ext.optim.factory import OPTIMIZERS

SCHEDULES = ("constant", "step", "cosine")
# [0]'s MultiStepLR milestones as fractions of its 300 epochs
STEP_MILESTONES = (250 / 300, 280 / 300)
STEP_GAMMA = 0.2


@dataclass(frozen=True)
class InfomaxOptimizer:
    """What `make` builds.

    Attributes:
        optimizer: ``"adam"`` (the papers'), ``"lars"`` or ``"sgd"``.
        lr: base rate (Adam: 2e-4 in [0]; not scaled with the batch size).
        weight_decay: 1e-5 in [0] and [1].
        betas, eps: Adam's; (0.8, 0.999) in both; eps 1e-8 in [0], 1e-7 in [1].
        warmup_steps: linear warm-up length in optimiser steps (500 in [0],
            0 in [1]), capped at `warmup_fraction` of the run.
        warmup_fraction: cap of the warm-up as a fraction of the run, so a
            short run is not spent warming up (csl_ext's; 1.0 disables it).
        schedule: after the warm-up, ``"constant"`` ([1]), ``"step"`` ([0]:
            x0.2 at 250/300 and 280/300 of the run) or ``"cosine"`` (to 0).
        momentum: of LARS / SGD.
    """

    optimizer: str = "adam"
    lr: float = 2e-4
    weight_decay: float = 1e-5
    betas: tuple[float, float] = (0.8, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 500
    warmup_fraction: float = 0.1
    schedule: str = "step"
    momentum: float = 0.9

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps of a run of `total_steps`."""
        return min(self.warmup_steps, int(self.warmup_fraction * total_steps))

    def make(self, params, total_steps: int):
        """(optimizer, per-step LambdaLR) for a run of `total_steps` steps."""
        warmup = self.warmup_for(total_steps)
        opt, cosine = make_optimizer(
            self.optimizer,
            params,
            lr=self.lr,
            weight_decay=self.weight_decay,
            total_steps=total_steps,
            warmup_steps=warmup,
            final_ratio=0.0 if self.schedule == "cosine" else 1.0,
            momentum=self.momentum,
            betas=tuple(self.betas),
            eps=self.eps,
        )
        if self.schedule != "step":
            return opt, cosine
        milestones = [round(f * total_steps) for f in STEP_MILESTONES]

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return STEP_GAMMA ** sum(step >= m for m in milestones)

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
