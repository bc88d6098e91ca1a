"""AMDIM's NCE loss with tanh clipping and a score regulariser, on the fused op.

- [0]: AMDIM, Bachman, Hjelm & Buchwalter 2019, "Learning Representations by
  Maximizing Mutual Information Across Views", https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104 (YADIM, §3.3)
"""

import math

import torch
from torch import nn

from csl_ext import distributed
from csl_ext.ops._checks import (
    check_finite,
    check_positive,
    check_same,
    check_tensor,
    value_checks_enabled,
)
from csl_ext.ops.amdim_nce import amdim_nce_reference, amdim_nce_terms

__all__ = ["AmdimNCELoss", "amdim_nce", "amdim_nce_reference"]


def amdim_nce(
    anchor: torch.Tensor,
    positives: torch.Tensor,
    tclip: float = 10.0,
    reg_coef: float = 0.05,
    *,
    gather: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AMDIM's noise-contrastive loss of global vectors against feature maps.

    Scores ``s = <a_b, p_{b', loc}> / sqrt(D)`` for every anchor b against
    every location of every image b'. The regulariser is
    ``reg_coef * mean(s^2)`` over all B x B x H x W raw scores; the scores
    are then clipped, ``s <- tclip * tanh(s / tclip)``. Anchor b's positives
    are the H*W locations of its own image and its negatives every location
    of the other images:
    ``loss = -mean_{b, loc} [s_pos - log(exp(s_pos) + sum_neg exp(s_neg))]``.

    Memory is O(B*H*W*D), never B x B*H*W: the fused op
    (`csl_ext.ops.amdim_nce_terms`) walks over tiles of the scores once,
    computing each row's negatives' log-sum-exp, the terms
    ``softplus(lse_neg_b - s_pos)``, the squared scores and the gradients.

    Args:
        anchor: (B, D) one vector per image of one view (e.g. the 1x1 map).
        positives: (B, D, H, W) a feature map of the other view; contiguous
            NCHW and channels-last maps are read in place (any other layout
            is copied once).
        tclip: > 0, the soft clip of the scores (AMDIM: 10).
        reg_coef: >= 0, the weight of the score regulariser (AMDIM: 0.05).
        gather: contrast against the maps of every torch.distributed process
            (negatives from the whole global batch); the gradient flows back
            to each process's own maps, and the regulariser averages over
            the B x (world * B) x H*W scores of this process's anchors.

    Returns:
        (loss, reg): two scalars; AMDIM minimises ``loss + reg``. For B = 1
        there are no negatives and the loss is 0.

    Raises:
        TypeError, ValueError: naming the argument, for wrong shapes, dtypes,
            devices, non-finite values or parameters out of range.

    Example:
        >>> loss, reg = amdim_nce(torch.randn(8, 64), torch.randn(8, 64, 7, 7))
    """
    _validate(anchor, positives, tclip, reg_coef)
    if reg_coef == 0:  # else a NaN or inf input makes reg non-finite: checked after
        _check_inputs_finite(anchor, positives)
    # Every process's maps are candidates; this process's own images start
    # at image rank * B of the gathered maps.
    maps = distributed.gather(positives) if gather else positives
    offset = distributed.rank() * anchor.shape[0] if gather else 0
    loss, reg = amdim_nce_terms(anchor, maps, tclip, reg_coef, offset)
    if reg_coef != 0 and value_checks_enabled(reg) and not bool(torch.isfinite(loss + reg)):
        # Any NaN or inf in the inputs reaches some score and so sum(s^2):
        # one scalar check instead of a pass over the maps; name the input.
        _check_inputs_finite(anchor, positives)
    return loss, reg


class AmdimNCELoss(nn.Module):
    """Module form of `amdim_nce`; forward returns (loss, reg)."""

    def __init__(self, tclip: float = 10.0, reg_coef: float = 0.05, gather: bool = False):
        super().__init__()
        self.tclip = tclip
        self.reg_coef = reg_coef
        self.gather = gather

    def forward(self, anchor: torch.Tensor, positives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return amdim_nce(anchor, positives, self.tclip, self.reg_coef, gather=self.gather)


def _validate(anchor, positives, tclip, reg_coef) -> None:
    check_tensor("anchor", anchor, dim=2)
    check_tensor("positives", positives, dim=4)
    check_same(("anchor", "positives"), anchor, positives)
    if anchor.shape[0] != positives.shape[0] or anchor.shape[1] != positives.shape[1]:
        raise ValueError(
            "anchor (B, D) and positives (B, D, H, W) must share B and D, "
            f"got {tuple(anchor.shape)} and {tuple(positives.shape)}"
        )
    if positives.shape[2] * positives.shape[3] == 0:
        raise ValueError(f"positives must have H, W >= 1, got shape {tuple(positives.shape)}")
    check_positive("tclip", tclip)
    if not isinstance(reg_coef, (int, float)) or not math.isfinite(reg_coef) or reg_coef < 0:
        raise ValueError(f"reg_coef must be a finite number >= 0, got {reg_coef!r}")


def _check_inputs_finite(anchor, positives) -> None:
    check_finite("anchor", anchor)
    check_finite("positives", positives)
