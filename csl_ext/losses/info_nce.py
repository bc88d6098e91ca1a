"""MoCo's InfoNCE loss on the fused InfoNCE op.

- [0]: MoCo, He et al. 2020, Algorithm 1, https://arxiv.org/abs/1911.05722
- [1]: MoCo v2, Chen et al. 2020, https://arxiv.org/abs/2003.04297
"""

import torch
import torch.nn.functional as F
from torch import nn

from csl_ext import distributed
from csl_ext.losses._pairs import check_views
from csl_ext.ops._checks import check_finite, check_same, check_tensor
from csl_ext.ops.info_nce_lse import info_nce_lse


def info_nce(
    q: torch.Tensor,
    k: torch.Tensor,
    queue: torch.Tensor | None = None,
    temperature: float = 0.2,
    *,
    gather: bool = False,
) -> torch.Tensor:
    """Cross-entropy of each query against its key and the negatives.

    q, k and the queue are L2-normalised. With a queue, query i's logits are
    ``[q_i.k_i, q_i.queue_1, ..., q_i.queue_K] / temperature`` with the
    positive first (MoCo); without one, the negatives are the other keys of
    the batch (with ``gather=True``: of every process's batch).

    Args:
        q: (N, D) queries (online encoder).
        k: (N, D) keys of the same images (momentum encoder; usually no grad).
        queue: optional (K, D) negative keys; receives no gradient.
        temperature: > 0, 0.2 in MoCo v2.
        gather: without a queue, use the keys of every process as negatives.

    Returns:
        The scalar loss, the mean over the N queries (0 for an empty batch).
    """
    check_views(("q", "k"), q, k, temperature)
    n = q.shape[0]
    if n == 0:
        return (q.sum() + k.sum()) * 0.0
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    positive = (q * k).sum(1) / temperature  # N
    if queue is None:
        keys = distributed.gather(k) if gather else k  # N * world x D
        # The positive is one of the candidates (column rank * N + i), so the
        # loss is a plain mean of lse - positive.
        lse = info_nce_lse(q, keys, scale=1.0 / temperature, row_weight=q.new_ones(n))
        return (lse - positive.to(lse.dtype)).mean()
    check_tensor("queue", queue, dim=2)
    check_same(("q", "queue"), q, queue)
    if queue.shape[1] != q.shape[1]:
        raise ValueError(f"queue must have shape (K, D) with D = {q.shape[1]}, got {tuple(queue.shape)}")
    check_finite("queue", queue)
    negatives = F.normalize(queue.detach(), dim=1)  # K x D
    lse_negatives = info_nce_lse(q, negatives, scale=1.0 / temperature)  # N
    # -log(e^p / (e^p + sum e^n)) = softplus(lse_n - p)
    return F.softplus(lse_negatives - positive.to(lse_negatives.dtype)).mean()


class InfoNCELoss(nn.Module):
    """Module form of `info_nce`."""

    def __init__(self, temperature: float = 0.2, gather: bool = False):
        super().__init__()
        self.temperature = temperature
        self.gather = gather

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor | None = None) -> torch.Tensor:
        return info_nce(q, k, queue, self.temperature, gather=self.gather)
