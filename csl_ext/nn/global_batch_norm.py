"""Global (synchronised) batch norm that also runs on CPU with gloo.

torch.nn.SyncBatchNorm refuses CPU tensors, and SimCLR / BYOL need the batch
statistics of every process (SimCLR Sec. 3: "global BN"), also in the CPU
tests. Statistics are summed with csl_ext.distributed.all_reduce_sum, whose
backward sums the gradient too (the convention of distributed.gather): the
gradient of the sum of every process's loss reaches every input, and DDP's
mean over processes then gives the gradient of the global mean loss.

- [0]: SimCLR, Chen et al. 2020, Sec. 3, https://arxiv.org/abs/2002.05709
"""

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from csl_ext import distributed

__all__ = ["GlobalBatchNorm", "convert_to_global_bn"]


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the union of every process's batch (any input rank >= 2).

    Outside a process group, or in eval mode, it is ordinary batch norm. The
    parameters and buffers are those of nn.BatchNorm*d, so checkpoints load
    into either.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"GlobalBatchNorm input must have shape (N, C, ...), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and distributed.world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # half / bf16 statistics in float32
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=xf.dtype)
        stats = distributed.all_reduce_sum(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))  # 2C + 1
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)  # biased, as BN normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_to_global_bn(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm*d in module (in place, recursively) by a
    GlobalBatchNorm holding the same parameters and buffers."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        reference = next(iter(module.state_dict().values()), None)  # weight or running_mean
        if reference is not None:  # None: affine=False and no running statistics
            new.to(device=reference.device, dtype=reference.dtype)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        if module.affine:
            new.weight.requires_grad_(module.weight.requires_grad)
            new.bias.requires_grad_(module.bias.requires_grad)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_to_global_bn(child))
    return module
