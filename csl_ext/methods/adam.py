"""The optimiser of AMDIM, CPC v2 and YADIM: Adam at a constant rate after a
short warm-up, as in the reference implementations that Falcon & Cho (2020)
train all three with (lr 2e-4 for AMDIM and YADIM; CPC v2 likewise here)."""
import torch

from csl_ext.optim.schedule import warmup_cosine


def adam_with_warmup(params, lr: float, total_steps: int, steps_per_epoch: int, warmup_epochs: float = 1.0,
                     betas=(0.8, 0.999), weight_decay: float = 0.0):
    """(Adam, LambdaLR): linear warm-up over `warmup_epochs`, then constant
    (a cosine to 1.0 of the base rate, i.e. flat). betas (0.8, 0.999) follow
    AMDIM's reference code."""
    opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8, weight_decay=weight_decay)
    warmup = min(total_steps, int(warmup_epochs * steps_per_epoch))
    return opt, warmup_cosine(opt, total_steps, warmup, final_ratio=1.0)
