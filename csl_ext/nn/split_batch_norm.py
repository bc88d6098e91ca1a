"""Batch norm over disjoint sub-batches: several GPUs' BN in one process.

MoCo's shuffled BN ([0], Sec. 3.3) needs the query and key encoders to
normalise over *different* groups of images; otherwise a query and its key
share batch statistics that the queued negatives lack, and the model learns
to recognise its own batch instead of the image ("cheating": the loss falls
and the features get worse). Under DDP each process is one group. In one
process, SplitBatchNorm computes the training statistics of ``num_splits``
interleaved sub-batches (samples s, s + S, s + 2S, ... form sub-batch s), as
if each were on its own GPU; MoCo shuffles the keys' images before its key
encoder so that the groups differ.

The running statistics are the mean of the sub-batches' updates; in eval
mode this is ordinary batch norm, and the parameters and buffers are those of
nn.BatchNorm1d/2d/3d, so checkpoints load into either.

- [0]: MoCo, He et al. 2020, https://arxiv.org/abs/1911.05722
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class SplitBatchNorm(_BatchNorm):
    """Batch norm whose training statistics come from ``num_splits`` sub-batches.

    Shapes:
        forward: (N, C, *) -> (N, C, *), e.g. (N, C) after a linear layer or
        (N, C, H, W) after a convolution; in training, N must be a multiple of
        num_splits.
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs):
        super().__init__(num_features, **kwargs)
        if not isinstance(num_splits, int) or num_splits < 1:
            raise ValueError(f"num_splits must be an integer >= 1, got {num_splits!r}")
        if not (self.affine and self.track_running_stats):
            raise ValueError("SplitBatchNorm needs affine=True and track_running_stats=True")
        self.num_splits = num_splits

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"SplitBatchNorm input must have shape (N, C, ...), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.num_splits
        if not self.training or s == 1:
            return super().forward(x)
        self._check_input_dim(x)
        n, c, *spatial = x.shape
        if n % s:
            raise ValueError(f"SplitBatchNorm: batch size {n} is not a multiple of num_splits={s}")
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # (N, C, *) -> (N/S, S*C, *): channel block s of the view is sub-batch s
        mean, var = self.running_mean.repeat(s), self.running_var.repeat(s)
        y = F.batch_norm(
            x.reshape(n // s, s * c, *spatial),
            mean,
            var,
            self.weight.repeat(s),
            self.bias.repeat(s),
            True,
            momentum,
            self.eps,
        )
        with torch.no_grad():
            self.running_mean.copy_(mean.view(s, c).mean(0))
            self.running_var.copy_(var.view(s, c).mean(0))
        return y.view(x.shape)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}"


def convert_split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replaces every nn.BatchNorm1d/2d/3d in ``module`` (in place) by a
    SplitBatchNorm with the same parameters and buffers; returns module."""
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        split = SplitBatchNorm(
            module.num_features,
            num_splits,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        split.load_state_dict(module.state_dict())
        return split.to(module.weight.device, module.weight.dtype)
    for name, child in module.named_children():
        setattr(module, name, convert_split_batchnorm(child, num_splits))
    return module
