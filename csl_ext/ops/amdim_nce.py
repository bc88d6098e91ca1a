"""The fused AMDIM NCE op: `amdim_nce`, its registrations (shapes for
torch.compile, autograd) and its materialised reference.

The compiled op ``torch.ops.csl_ext.amdim_nce`` walks over tiles of the
(N, K*L) scores once and returns per-anchor loss terms and squared-score sums
together with the gradients of a weighted sum of them; the autograd function
below turns them into AMDIM's two scalars. The loss with its argument checks
and the distributed gather is csl_ext.losses.amdim_nce.
"""

import math

import torch
from torch.autograd.function import once_differentiable

from csl_ext._extension import has_extension, warn_fallback
from csl_ext.ops._checks import value_checks_enabled
from csl_ext.ops._dtypes import compute_dtype

__all__ = ["amdim_nce_reference", "amdim_nce_terms"]

# NCHW maps with fewer locations per image are copied into rows (K*L, D)
# first: the in-place path runs one (R x D) x (D x L) GEMM per image, which is
# slow for small L (5x5 maps: 1.8x the three-GEMM floor in place, 1.4x with
# the copy; 7x7: the in-place path is the faster). benchmarks/test_bench_amdim_cpc.py.
MIN_LOCATIONS_IN_PLACE = 32


def amdim_nce_terms(
    anchors: torch.Tensor, maps: torch.Tensor, tclip: float, reg_coef: float, block_offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """AMDIM's NCE loss and score regulariser of anchors against feature maps.

    Raw scores ``s = <a_i, maps[k, :, y, x]> / sqrt(D)`` for every anchor i
    and every location of every image k; logits ``l = tclip * tanh(s /
    tclip)``. Anchor i's positives are the locations of image
    ``i + block_offset``, its negatives every location of the other images.

    Args:
        anchors: (N, D).
        maps: (K, D, H, W), K >= N + block_offset, same dtype and device; any
            memory layout (contiguous NCHW and channels-last are read in place).
        tclip: > 0.
        reg_coef: >= 0.
        block_offset: anchor i's own image is maps[i + block_offset], e.g.
            rank * N when the maps are gathered over processes.

    Returns:
        (loss, reg): ``mean_{i, loc} softplus(lse_neg_i - l_{i, own, loc})``
        and ``reg_coef * mean(s^2)`` over the N x K x H*W scores, in the
        inputs' dtype. The arguments are assumed checked (the loss checks them).
    """
    if not has_extension():
        warn_fallback("amdim_nce")
        return amdim_nce_reference(anchors, maps, tclip, reg_coef, block_offset)
    k, d, h, w = maps.shape
    if maps.is_contiguous() and h * w >= MIN_LOCATIONS_IN_PLACE:
        candidates = maps.view(k, d, h * w)  # maps (K, D, L), read in place
    else:
        # rows (K*L, D): a view of a channels-last map, else one copy
        candidates = maps.permute(0, 2, 3, 1).reshape(k * h * w, d)
    loss, reg = _AmdimNce.apply(anchors, candidates, h * w, block_offset, float(tclip), float(reg_coef))
    return loss.to(anchors.dtype), reg.to(anchors.dtype)


class _AmdimNce(torch.autograd.Function):
    """amdim_nce_terms on (N, D) anchors and candidates given as rows (K*L,
    D) or maps (K, D, L), over the fused op.

    On CPU the forward also asks the op for the gradients of ``loss + reg``
    (three GEMMs of (N, K*L, D) in all, as few as a materialised
    implementation); a backward whose incoming gradients of loss and reg are
    equal, as for ``(loss + reg).backward()``, only rescales them, and any
    other pair re-runs the op with those weights. On a GPU, where comparing
    the incoming gradients would synchronise with the host, the forward
    computes the loss only and the backward re-runs the op with the incoming
    gradients as device-side weight factors: exact, four GEMMs, no sync.
    """

    @staticmethod
    def forward(ctx, anchors, candidates, block_size, block_offset, tclip, reg_coef):
        n, d = anchors.shape
        m = candidates.numel() // d  # K * L
        scale = 1.0 / math.sqrt(d)
        # loss = sum(loss terms) / (N L); reg = reg_coef * sum(s^2) / (N K L)
        weights = (1.0 / (n * block_size), reg_coef / (n * m))
        fused = any(ctx.needs_input_grad[:2]) and value_checks_enabled(anchors)
        loss_rows, square_rows, grad_a, grad_c = torch.ops.csl_ext.amdim_nce(
            anchors, candidates, None, block_size, block_offset, scale, tclip, *weights, fused
        )
        ctx.args = (block_size, block_offset, scale, tclip, weights, fused)
        ctx.save_for_backward(anchors, candidates, grad_a, grad_c)
        return loss_rows.sum() * weights[0], square_rows.sum() * weights[1]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_reg):
        anchors, candidates, grad_a, grad_c = ctx.saved_tensors
        block_size, block_offset, scale, tclip, weights, fused = ctx.args
        need_a, need_c = ctx.needs_input_grad[:2]
        op_args = (block_size, block_offset, scale, tclip, *weights, True)
        if not fused:  # the incoming gradients as device-side factors: no host sync
            factors = torch.stack([grad_loss, grad_reg])
            _, _, grad_a, grad_c = torch.ops.csl_ext.amdim_nce(anchors, candidates, factors, *op_args)
        else:
            g_loss, g_reg = float(grad_loss), float(grad_reg)
            if g_loss == g_reg or weights[1] == 0.0:
                # The forward's gradients, of loss + reg, times the common
                # factor; returned as they are for 1 (no copy of (K*L, D)).
                if g_loss != 1.0:
                    grad_a, grad_c = grad_a * g_loss, grad_c * g_loss
            else:
                factors = torch.tensor([g_loss, g_reg], dtype=grad_a.dtype)
                _, _, grad_a, grad_c = torch.ops.csl_ext.amdim_nce(anchors, candidates, factors, *op_args)
        return (
            grad_a.to(anchors.dtype) if need_a else None,
            grad_c.to(candidates.dtype) if need_c else None,
            None,
            None,
            None,
            None,
        )


def amdim_nce_reference(
    anchors: torch.Tensor, maps: torch.Tensor, tclip: float = 10.0, reg_coef: float = 0.05, block_offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The formula written out with the full (N, K, H*W) score tensor, as in
    AMDIM's reference code: slow and memory-hungry, obviously correct."""
    n = anchors.shape[0]
    k, d, h, w = maps.shape
    raw = torch.einsum("id,jdl->ijl", anchors, maps.reshape(k, d, h * w)) / math.sqrt(d)  # N x K x HW
    reg = reg_coef * raw.square().mean()
    s = tclip * torch.tanh(raw / tclip)
    own_image = torch.arange(n, device=anchors.device) + block_offset  # N
    own = (torch.arange(k, device=anchors.device) == own_image.unsqueeze(1)).unsqueeze(2)  # N x K x 1
    s_pos = s[torch.arange(n, device=anchors.device), own_image]  # N x HW: anchor i vs its own locations
    s_neg = s.masked_fill(own, float("-inf")).reshape(n, -1)  # N x K*HW
    lse_neg = torch.logsumexp(s_neg, dim=1, keepdim=True)  # N x 1
    log_denominator = torch.logaddexp(s_pos, lse_neg)
    return -(s_pos - log_denominator).mean(), reg


def _register() -> None:
    @torch.library.register_fake("csl_ext::amdim_nce")
    def _(
        anchors,
        candidates,
        weight_factors,
        block_size,
        block_offset,
        scale,
        tclip,
        loss_weight,
        reg_weight,
        compute_grad,
    ):
        dtype = compute_dtype(anchors.dtype)
        n = anchors.shape[0]
        return (
            anchors.new_empty((n,), dtype=dtype),
            anchors.new_empty((n,), dtype=dtype),
            anchors.new_empty(anchors.shape if compute_grad else (0,), dtype=dtype),
            candidates.new_empty(candidates.shape if compute_grad else (0,), dtype=dtype),
        )


if has_extension():
    _register()
