"""Optimisers and learning-rate schedules for pretraining."""

from csl_ext.optim.factory import OPTIMIZERS, lr_scale_groups, make_optimizer
from csl_ext.optim.lars import LARS, exclude_from_wd_and_adaptation, lars_warmup_cosine
from csl_ext.optim.schedule import warmup_cosine, warmup_cosine_lambda

__all__ = [
    "OPTIMIZERS",
    "make_optimizer",
    "lr_scale_groups",
    "LARS",
    "exclude_from_wd_and_adaptation",
    "lars_warmup_cosine",
    "warmup_cosine",
    "warmup_cosine_lambda",
]
