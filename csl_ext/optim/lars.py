"""LARS: layer-wise adaptive rate scaling, as SimCLR and BYOL use it.

- [0]: You et al. 2017, https://arxiv.org/abs/1708.03888
- [1]: SimCLR, Chen et al. 2020, Sec. B.1 (LARS, lr 0.3 x B/256, wd 1e-6;
  biases and BN parameters excluded), https://arxiv.org/abs/2002.05709
"""

import torch
from torch import nn


def exclude_from_wd_and_adaptation(params) -> list[dict]:
    """Splits parameters into weights (decayed, LARS-adapted) and 1-D
    parameters (biases, BN affine: neither), as in SimCLR's and BYOL's code.

    Args:
        params: an nn.Module, an iterable of parameters, or an iterable of
            parameter groups (dicts with "params"; their other keys, e.g.
            "lr", are kept in both halves).
    Returns:
        two groups per input group (a plain iterable is one group), weights first.
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    params = list(params)
    if not any(isinstance(p, dict) for p in params):
        return _split(params, {})
    return [g for group in params for g in _split(group["params"], group)]


def _split(params, options: dict) -> list[dict]:
    options = {k: v for k, v in options.items() if k != "params"}
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {**options, "params": decay},
        {**options, "params": no_decay, "weight_decay": 0.0, "lars_exclude": True},
    ]


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose per-layer step is scaled by the trust ratio
    ``eta * ||w|| / (||g|| + wd ||w||)``.

    Args:
        params: parameters or groups; a group with ``lars_exclude=True`` takes
            plain SGD-with-momentum steps (biases, BN).
        lr: base learning rate (> 0), e.g. 0.3 x batch / 256 for SimCLR.
        momentum: 0.9 in SimCLR / BYOL.
        weight_decay: e.g. 1e-6 (SimCLR), 1.5e-6 (BYOL).
        eta: trust coefficient, 0.001.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"] > 0:
                        g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    # trust ratio, 1 where either norm is 0 (fresh zero-init layers)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    g = g.mul(trust)
                elif group["weight_decay"] > 0:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def lars_warmup_cosine(
    params, base_lr: float, batch_size: int, weight_decay: float, total_steps: int, warmup_steps: int
):
    """(LARS, LambdaLR) of SimCLR and BYOL: lr = base_lr x batch_size / 256,
    momentum 0.9, biases and norms excluded from decay and adaptation,
    linear warm-up then cosine decay (SimCLR [0], Sec. B.1; BYOL, Sec. C)."""
    from csl_ext.optim.schedule import warmup_cosine

    opt = LARS(
        exclude_from_wd_and_adaptation(params), lr=base_lr * batch_size / 256, momentum=0.9, weight_decay=weight_decay
    )
    return opt, warmup_cosine(opt, total_steps, int(min(total_steps, warmup_steps)))
