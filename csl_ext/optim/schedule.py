"""Linear warm-up then cosine decay, stepped once per optimisation step.

- [0]: Goyal et al. 2017 (warm-up), https://arxiv.org/abs/1706.02677
- [1]: Loshchilov & Hutter 2017 (cosine), https://arxiv.org/abs/1608.03983
"""

import math

import torch


def warmup_cosine_lambda(total_steps: int, warmup_steps: int = 0, final_ratio: float = 0.0):
    """Multiplier of the base lr at step s: ``(s+1)/warmup`` during warm-up,
    then cosine from 1 to ``final_ratio`` at ``total_steps``."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps!r}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, final_ratio: float = 0.0):
    """A LambdaLR with `warmup_cosine_lambda` (its state_dict saves the step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine_lambda(total_steps, warmup_steps, final_ratio))
