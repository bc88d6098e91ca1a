"""AMDIM's NCE loss with tanh clipping and a score regulariser, on the fused op.

- [0]: AMDIM, Bachman, Hjelm & Buchwalter 2019, "Learning Representations by
  Maximizing Mutual Information Across Views", https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104 (YADIM, §3.3)
"""
import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from csl_ext._extension import has_extension, warn_fallback
from csl_ext.ops._checks import check_positive, check_same, check_tensor

__all__ = ["amdim_nce", "amdim_nce_reference", "AmdimNCELoss"]


def amdim_nce(
    anchor: torch.Tensor, positives: torch.Tensor, tclip: float = 10.0, reg_coef: float = 0.05
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
    ``csl_ext::amdim_nce`` walks over tiles of the scores once, computing
    each row's negatives' log-sum-exp, the terms
    ``softplus(lse_neg_b - s_pos)``, the squared scores and the gradients.

    Args:
        anchor: (B, D) one vector per image of one view (e.g. the 1x1 map).
        positives: (B, D, H, W) a feature map of the other view. Channels-last
            memory (``positives.contiguous(memory_format=torch.channels_last)``)
            saves a (B*H*W, D) copy and its gradient's copy: the op then reads
            the map in place.
        tclip: > 0, the soft clip of the scores (AMDIM: 10).
        reg_coef: >= 0, the weight of the score regulariser (AMDIM: 0.05).

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
    if not has_extension():
        warn_fallback("amdim_nce")
        loss, reg = amdim_nce_reference(anchor, positives, tclip, reg_coef)
    else:
        b, d, h, w = positives.shape
        # (B*HW, D), image-major: a view for channels-last maps, else one copy.
        candidates = positives.permute(0, 2, 3, 1).reshape(b * h * w, d)
        loss, reg = _AmdimNce.apply(anchor, candidates, h * w, float(tclip), float(reg_coef))
    if reg_coef != 0 and not torch.compiler.is_compiling() and not bool(torch.isfinite(loss + reg)):
        # Any NaN or inf in the inputs reaches some score and so sum(s^2):
        # one scalar check instead of a pass over the maps; name the input.
        _check_inputs_finite(anchor, positives)
    return loss.to(anchor.dtype), reg.to(anchor.dtype)


class _AmdimNce(torch.autograd.Function):
    """amdim_nce on (B, D) anchors and (B*HW, D) candidates over the fused
    op ``csl_ext::amdim_nce``.

    The op sweeps the score tiles once: per anchor it returns the loss terms
    and the sum of squared scores and, when asked, the gradients of
    ``loss_weight * sum(loss terms) + reg_weight * sum(squares)``. The
    forward asks for those of ``loss + reg`` (three GEMMs of (B, B*HW, D) in
    all, as few as a materialised implementation); a backward whose incoming
    gradients of loss and reg are equal, as for ``(loss + reg).backward()``,
    only rescales them. Any other pair (e.g. reg unused: 0) re-runs the op
    with those weights: exact, three more GEMMs.
    """

    @staticmethod
    def forward(ctx, anchor, candidates, hw, tclip, reg_coef):
        b, d = anchor.shape
        scale = 1.0 / math.sqrt(d)
        # loss = sum(loss terms) / (B HW); reg = reg_coef * sum(s^2) / (B B HW)
        weights = (1.0 / (b * hw), reg_coef / (b * b * hw))
        need_grad = any(ctx.needs_input_grad[:2])
        loss_rows, square_rows, grad_a, grad_c = torch.ops.csl_ext.amdim_nce(
            anchor, candidates, hw, scale, tclip, *weights, need_grad
        )
        ctx.args = (hw, scale, tclip, weights, anchor.dtype, candidates.dtype)
        ctx.save_for_backward(anchor, candidates, grad_a, grad_c)
        return loss_rows.sum() * weights[0], square_rows.sum() * weights[1]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_reg):
        anchor, candidates, grad_a, grad_c = ctx.saved_tensors
        hw, scale, tclip, (loss_weight, reg_weight), a_dtype, c_dtype = ctx.args
        need_a, need_c = ctx.needs_input_grad[:2]
        g_loss, g_reg = float(grad_loss), float(grad_reg)
        if g_loss == g_reg or reg_weight == 0.0:
            # The forward's gradients, of loss + reg, times the common factor;
            # returned as they are for a factor of 1 (no copy of (B*HW, D)).
            if g_loss != 1.0:
                grad_a, grad_c = grad_a * g_loss, grad_c * g_loss
        else:
            _, _, grad_a, grad_c = torch.ops.csl_ext.amdim_nce(
                anchor, candidates, hw, scale, tclip, g_loss * loss_weight, g_reg * reg_weight, True
            )
        return (
            grad_a.to(a_dtype) if need_a else None,
            grad_c.to(c_dtype) if need_c else None,
            None,
            None,
            None,
        )


def amdim_nce_reference(
    anchor: torch.Tensor, positives: torch.Tensor, tclip: float = 10.0, reg_coef: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """The formula written out with the full (B, B, H*W) score tensor, as in
    AMDIM's reference code: slow and memory-hungry, obviously correct."""
    b, d, h, w = positives.shape
    raw = torch.einsum("id,jdl->ijl", anchor, positives.reshape(b, d, h * w)) / math.sqrt(d)  # B x B x HW
    reg = reg_coef * raw.square().mean()
    s = tclip * torch.tanh(raw / tclip)
    own = torch.eye(b, dtype=torch.bool, device=anchor.device).unsqueeze(2)  # B x B x 1
    s_pos = s.diagonal(dim1=0, dim2=1).T  # B x HW: anchor b vs its own locations
    s_neg = s.masked_fill(own, float("-inf")).reshape(b, -1)  # B x B*HW
    lse_neg = torch.logsumexp(s_neg, dim=1, keepdim=True)  # B x 1
    log_denominator = torch.logaddexp(s_pos, lse_neg)
    return -(s_pos - log_denominator).mean(), reg


class AmdimNCELoss(nn.Module):
    """Module form of `amdim_nce`; forward returns (loss, reg)."""

    def __init__(self, tclip: float = 10.0, reg_coef: float = 0.05):
        super().__init__()
        self.tclip = tclip
        self.reg_coef = reg_coef

    def forward(self, anchor: torch.Tensor, positives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return amdim_nce(anchor, positives, self.tclip, self.reg_coef)


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
    _check_finite("anchor", anchor)
    _check_finite("positives", positives)


def _check_finite(name: str, value: torch.Tensor) -> None:
    """ValueError if `value` holds NaN or inf. One aminmax pass (NaN
    propagates to both ends): ~10x cheaper on CPU than isfinite().all(),
    which at AMDIM's 10M-element maps cost two GEMMs' time."""
    if torch.compiler.is_compiling() or value.numel() == 0:
        return
    # In memory order (e.g. channels-last maps), so aminmax reads the
    # storage as it lies instead of copying it first.
    order = sorted(range(value.dim()), key=lambda i: -value.stride(i))
    dense = value.detach().permute(order)
    low, high = torch.aminmax(dense if dense.is_contiguous() else value.detach())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf values")
