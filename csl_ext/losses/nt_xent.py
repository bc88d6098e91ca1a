"""SimCLR's NT-Xent loss on the fused InfoNCE op.

- [0]: SimCLR, Chen et al. 2020, Algorithm 1, https://arxiv.org/abs/2002.05709
"""

import torch
import torch.nn.functional as F
from torch import nn

from csl_ext import distributed
from csl_ext.losses._pairs import check_views
from csl_ext.ops.info_nce_lse import info_nce_lse


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1, *, gather: bool = False) -> torch.Tensor:
    """Normalised-temperature cross-entropy of two views.

    The 2N views are L2-normalised; view k's positive is the other view of
    its image and its negatives are the other 2N - 2 views (with
    ``gather=True``: the other views of every process's batch). The loss is
    the mean over the 2N views of ``-log softmax`` of the positive, with
    logits ``cos / temperature``.

    Args:
        z1: (N, D) projections of the first view.
        z2: (N, D) projections of the second view of the same images.
        temperature: > 0; 0.1 (the default: SimCLR's ImageNet setting) or 0.5 (its CIFAR-10 setting in
            google-research/simclr's README, and csl_ext.methods.simclr's default).
        gather: contrast against the views of every torch.distributed process
            (the gradient flows back to each process's own views).

    Returns:
        The scalar loss (0 for an empty batch).

    Example:
        >>> loss = nt_xent(torch.randn(8, 128), torch.randn(8, 128), 0.5)
    """
    check_views(("z1", "z2"), z1, z2, temperature)
    n = z1.shape[0]
    if n == 0:
        return (z1.sum() + z2.sum()) * 0.0
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # 2N x D
    positive = (z[:n] * z[n:]).sum(1) / temperature  # N
    positive = torch.cat([positive, positive])  # 2N: view k pairs with k +- N
    candidates = distributed.gather(z) if gather else z  # 2N * world x D
    offset = distributed.rank() * 2 * n if gather else 0
    # The loss is a plain mean of the lse: every row weighs the same, so the
    # op computes both gradients in its forward pass.
    lse = info_nce_lse(
        z, candidates, scale=1.0 / temperature, mask="diag", row_offset=offset, row_weight=z.new_ones(2 * n)
    )
    return (lse - positive.to(lse.dtype)).mean()


class NTXentLoss(nn.Module):
    """Module form of `nt_xent`."""

    def __init__(self, temperature: float = 0.1, gather: bool = False):
        super().__init__()
        self.temperature = temperature
        self.gather = gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature, gather=self.gather)
