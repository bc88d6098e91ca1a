"""One optimiser choice for every method: ``"lars" | "sgd" | "adam"``.

Each method defaults to its paper's optimiser; the others are there so that
methods can be compared at an equal budget with the same optimiser (Falcon &
Cho 2020 train AMDIM, CPC and YADIM with Adam; SimCLR and BYOL use LARS; MoCo
uses SGD). The schedule is the same for all three: linear warm-up, then a
cosine from the base rate to ``final_ratio`` of it, stepped once per batch.

- [0]: LARS, You et al. 2017, https://arxiv.org/abs/1708.03888
- [1]: Adam, Kingma & Ba 2015, https://arxiv.org/abs/1412.6980
"""

import torch

from csl_ext.optim.lars import LARS, exclude_from_wd_and_adaptation
from csl_ext.optim.schedule import warmup_cosine

OPTIMIZERS = ("lars", "sgd", "adam")


def make_optimizer(
    name: str,
    params,
    *,
    lr: float,
    weight_decay: float = 0.0,
    total_steps: int,
    warmup_steps: int = 0,
    final_ratio: float = 0.0,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
):
    """(optimizer, per-step LambdaLR) of `params`.

    Args:
        name: ``"lars"`` (SGD + momentum with layer-wise trust ratios; biases
            and norm parameters excluded from decay and adaptation, as SimCLR's
            and BYOL's code), ``"sgd"`` (momentum SGD) or ``"adam"``.
        params: parameters (or an nn.Module) to optimise, or parameter groups
            (dicts with "params" and an optional "lr_scale": that group's
            rate is ``lr x lr_scale`` throughout the schedule).
        lr: the base learning rate, already scaled to the batch size.
        weight_decay: L2 decay (decoupled from nothing: added to the gradient).
        total_steps, warmup_steps, final_ratio: the warm-up + cosine schedule
            (``final_ratio=1`` keeps the rate constant after the warm-up).
        momentum: LARS / SGD momentum.
        betas, eps: Adam's.

    Raises:
        ValueError: an unknown `name`, or a non-positive `lr` or "lr_scale".
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    params = _scaled_groups(params, lr)
    if name == "lars":
        opt = LARS(exclude_from_wd_and_adaptation(params), lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif name == "sgd":
        opt = torch.optim.SGD(_params(params), lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(_params(params), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    warmup = int(min(total_steps, max(0, warmup_steps)))
    return opt, warmup_cosine(opt, total_steps, warmup, final_ratio=final_ratio)


def lr_scale_groups(params, scaled, lr_scale: float) -> list[dict]:
    """Two parameter groups for `make_optimizer`: `params` not in `scaled`,
    then those in `scaled` with ``"lr_scale": lr_scale`` (e.g. BYOL's predictor
    at a multiple of the rest's rate). Order within each group is `params`'s.

    Args:
        params: iterable of parameters (or an nn.Module).
        scaled: iterable of parameters (or an nn.Module) to give the scale.
        lr_scale: the multiple of the base rate for `scaled`.
    """
    ids = {id(p) for p in _params(scaled)}
    params = list(_params(params))
    return [
        {"params": [p for p in params if id(p) not in ids]},
        {"params": [p for p in params if id(p) in ids], "lr_scale": lr_scale},
    ]


def _params(params):
    return params.parameters() if isinstance(params, torch.nn.Module) else params


def _scaled_groups(params, lr: float):
    """Groups with an "lr_scale" get their own "lr" (which LambdaLR then
    schedules); anything else is returned as given."""
    params = list(_params(params))
    if not any(isinstance(p, dict) for p in params):
        return params
    groups = []
    for group in params:
        group = dict(group)
        scale = group.pop("lr_scale", 1.0)
        if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"lr_scale must be a number > 0, got {scale!r}")
        groups.append({**group, "lr": lr * scale})
    return groups
