"""CPC v2's multi-step InfoNCE over a grid of patch vectors, on the fused op.

- [0]: CPC v2, Hénaff et al. 2020, "Data-Efficient Image Recognition with
  Contrastive Predictive Coding", https://arxiv.org/abs/1905.09272
- [1]: CPC, van den Oord et al. 2018, https://arxiv.org/abs/1807.03748
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csl_ext import distributed
from csl_ext.ops._checks import check_same, check_tensor
from csl_ext.ops._dtypes import compute_dtype
from csl_ext.ops.info_nce_lse import info_nce_lse

__all__ = ["CPCInfoNCELoss", "cpc_infonce", "cpc_infonce_reference"]


def cpc_infonce(
    preds: Sequence[torch.Tensor],
    targets: torch.Tensor,
    offsets: Sequence[int],
    scale: float = 1.0,
    *,
    gather: bool = False,
) -> torch.Tensor:
    """Multi-step InfoNCE: each prediction against every target of the batch.

    ``preds[n][b, :, i, j]`` is the prediction made from rows 0..i of image
    b's grid for the target ``offsets[n]`` rows below, ``targets[b, :, i +
    offsets[n], j]``. Each prediction is scored against all B*H*W targets
    (``scale * <pred, target>``) and the loss is the cross-entropy with the
    true target, averaged over the step's rows and summed over the steps.

    All steps' prediction rows go through the fused op in one call against
    the shared targets (a row's log-sum-exp does not depend on its step), so
    the (rows x B*H*W) logits never exist. Each row's weight in the loss,
    1 / rows_n, is known up front: the op's forward computes both gradients
    and the backward only rescales them.

    Args:
        preds: K tensors, preds[n]: (B, D, H - offsets[n], W).
        targets: (B, D, H, W), e.g. the 1x1 target head on a 7x7 grid.
        offsets: K ints, 1 <= offsets[n] <= H - 1, e.g. range(1, 7) for a
            7x7 grid (CPC v2 predicts up to 5 rows below: range(2, 7) ...).
        scale: multiplies every score, e.g. 1 / temperature (CPC: 1).
        gather: contrast against the targets of every torch.distributed
            process (negatives from the whole global batch); the gradient
            flows back to each process's own targets.

    Returns:
        The scalar loss, sum over steps of the mean cross-entropy.

    Raises:
        TypeError, ValueError: naming the argument, for wrong shapes, dtypes,
            devices, offsets or non-finite values.

    Example:
        >>> t = torch.randn(4, 16, 7, 7)
        >>> p = [torch.randn(4, 16, 7 - k, 7) for k in (1, 2, 3)]
        >>> loss = cpc_infonce(p, t, (1, 2, 3))
    """
    offsets = _validate(preds, targets, offsets, scale)
    b, d, h, w = targets.shape
    all_targets = distributed.gather(targets) if gather else targets  # (world * B, D, H, W)
    candidates = all_targets.permute(0, 2, 3, 1).reshape(-1, d)  # (world*B*H*W, D), (b, i, j) row-major
    # Row weights 1 / rows_n in the compute dtype itself (float64 in: float64
    # throughout), so that the sum below is each step's exact mean.
    dtype = compute_dtype(targets.dtype)
    anchors, positive, row_weight = [], [], []
    for pred, offset in zip(preds, offsets):
        rows = b * (h - offset) * w
        anchors.append(pred.permute(0, 2, 3, 1).reshape(rows, d))  # (b, i, j), i < H - offset
        # The true target of (b, i, j) is targets[b, :, i + offset, j]: a dot
        # product with this process's own targets, in the anchors' order.
        positive.append((pred * targets[:, :, offset:]).sum(1).reshape(rows))
        row_weight.append(torch.full((rows,), 1.0 / rows, dtype=dtype, device=targets.device))
    anchors = torch.cat(anchors)  # R x D, R = sum_n B (H - offsets[n]) W
    row_weight = torch.cat(row_weight)
    lse = info_nce_lse(anchors, candidates, scale=scale, row_weight=row_weight)  # R
    positive = scale * torch.cat(positive).to(lse.dtype)  # R
    # sum_n mean over step n = sum_r row_weight_r * (lse_r - pos_r)
    return ((lse - positive) * row_weight).sum().to(targets.dtype)


def cpc_infonce_reference(
    preds: Sequence[torch.Tensor], targets: torch.Tensor, offsets: Sequence[int], scale: float = 1.0
) -> torch.Tensor:
    """Step by step with each step's (rows, B*H*W) logits materialised and
    F.cross_entropy: the obviously-correct baseline of `cpc_infonce`."""
    b, d, h, w = targets.shape
    flat_targets = targets.permute(0, 2, 3, 1).reshape(-1, d)  # B*H*W x D
    index = torch.arange(b * h * w, device=targets.device).view(b, h, w)
    loss = targets.new_zeros(())
    for pred, offset in zip(preds, offsets):
        rows = pred.permute(0, 2, 3, 1).reshape(-1, d)
        logits = scale * rows @ flat_targets.T  # rows x B*H*W
        loss = loss + F.cross_entropy(logits, index[:, offset:].reshape(-1))
    return loss


class CPCInfoNCELoss(nn.Module):
    """Module form of `cpc_infonce` with fixed offsets."""

    def __init__(self, offsets: Sequence[int], scale: float = 1.0, gather: bool = False):
        super().__init__()
        self.offsets = tuple(offsets)
        self.scale = scale
        self.gather = gather

    def forward(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        return cpc_infonce(preds, targets, self.offsets, self.scale, gather=self.gather)


def _validate(preds, targets, offsets, scale) -> tuple[int, ...]:
    check_tensor("targets", targets, dim=4)
    b, d, h, w = targets.shape
    if isinstance(preds, torch.Tensor) or not isinstance(preds, Sequence):
        raise TypeError(f"preds must be a sequence of tensors (one per offset), got {type(preds).__name__}")
    if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Sequence):
        raise TypeError(f"offsets must be a sequence of ints, got {type(offsets).__name__}")
    if len(preds) != len(offsets) or not preds:
        raise ValueError(f"preds and offsets must have the same length >= 1, got {len(preds)} and {len(offsets)}")
    offsets = tuple(offsets)
    for n, offset in enumerate(offsets):
        if isinstance(offset, bool) or not isinstance(offset, int) or not 1 <= offset <= h - 1:
            raise ValueError(f"offsets[{n}] must be an int in [1, H - 1] = [1, {h - 1}], got {offset!r}")
    for n, (pred, offset) in enumerate(zip(preds, offsets)):
        check_tensor(f"preds[{n}]", pred, dim=4)
        check_same((f"preds[{n}]", "targets"), pred, targets)
        if tuple(pred.shape) != (b, d, h - offset, w):
            raise ValueError(
                f"preds[{n}] must have shape (B, D, H - offsets[{n}], W) = {(b, d, h - offset, w)}, "
                f"got {tuple(pred.shape)}"
            )
    if (
        not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not scale == scale
        or abs(scale) == float("inf")
    ):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    return offsets
