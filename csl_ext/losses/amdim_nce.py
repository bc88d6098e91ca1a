"""AMDIM's NCE loss with tanh clipping and a score regulariser, on the fused op.

- [0]: AMDIM, Bachman, Hjelm & Buchwalter 2019, "Learning Representations by
  Maximizing Mutual Information Across Views", https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104 (YADIM, §3.3)
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from csl_ext._extension import has_extension, warn_fallback
from csl_ext.ops._checks import check_positive, check_same, check_tensor
from csl_ext.ops.reference import compute_dtype

__all__ = ["amdim_nce", "amdim_nce_reference", "AmdimNCELoss"]

_BLOCK_MASK = 2  # csl_ext::info_nce_lse's mask id of "block"


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

    Memory is O(B*H*W*D), never B x B*H*W: the negatives' log-sum-exp comes
    from the fused op ``csl_ext::info_nce_lse`` (mask "block" hides the own
    image's H*W locations, softcap = tclip); each (b, loc) term is then
    ``softplus(lse_neg_b - s_pos)``, and the regulariser is summed tile by
    tile.

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
    if not has_extension():
        warn_fallback("amdim_nce")
        return amdim_nce_reference(anchor, positives, tclip, reg_coef)
    b, d, h, w = positives.shape
    # (B*HW, D), image-major: a view for channels-last maps, else one copy.
    candidates = positives.permute(0, 2, 3, 1).reshape(b * h * w, d)
    loss, reg = _AmdimNce.apply(anchor, candidates, h * w, float(tclip), float(reg_coef))
    return loss.to(anchor.dtype), reg.to(anchor.dtype)


class _AmdimNce(torch.autograd.Function):
    """amdim_nce on (B, D) anchors and (B*HW, D) candidates.

    One autograd node rather than a chain of ops so that every gradient is
    accumulated in place into the op's (B*HW, D) candidate gradient: the
    only buffer of that size the loss allocates (plus the inputs' copies for
    half precision). Multiply-adds: the op's 1 + 3 GEMMs of (B, B*HW, D)
    and, for the regulariser, 1 + 3 more on tiles of 2^18 scores or its Gram
    form when D is small (see _use_grams).

    Why not fewer GEMMs: the op's backward recomputes the scores (it keeps
    only the lse), and d loss / d lse_b = mean_loc sigmoid(lse_b - s_pos)
    is not known before the forward, so its gradients-in-the-forward mode
    (row_weight) does not apply. A materialised implementation needs three
    GEMMs, so at D = 1024 on CPU, where the GEMMs dominate, it is faster;
    this loss trades that for O(B*HW*D) memory.
    """

    TILE_ELEMENTS = 1 << 18  # regulariser scores per tile: 1 MB in float32

    @staticmethod
    def forward(ctx, anchor, candidates, hw, tclip, reg_coef):
        b, d = anchor.shape
        work = compute_dtype(anchor.dtype)  # half and bfloat16: float32
        a, c = anchor.to(work).contiguous(), candidates.to(work).contiguous()
        scale = 1.0 / math.sqrt(d)
        # lse over the negatives, B. No row_weight: d loss / d lse_b =
        # mean_loc sigmoid(lse_b - s_pos) is only known after the forward.
        lse = torch.ops.csl_ext.info_nce_lse(a, c, scale, tclip, _BLOCK_MASK, hw, 0)
        raw_pos = torch.bmm(c.view(b, hw, d), a.unsqueeze(2)).squeeze(2) * scale  # B x HW
        pos = tclip * torch.tanh(raw_pos / tclip)
        # -[s_pos - log(exp(s_pos) + exp(lse_neg))] = softplus(lse_neg - s_pos)
        z = lse.unsqueeze(1) - pos  # B x HW
        loss = F.softplus(z).mean()
        grams = _grams(a, c) if _use_grams(a, c) else None
        square_sum = (grams[0] * grams[1]).sum() if grams else _score_square_sum(a, c)
        reg = reg_coef * scale * scale * square_sum / (b * c.shape[0])
        ctx.grams = grams
        ctx.save_for_backward(a, c, lse, pos, z)
        ctx.args = (hw, tclip, reg_coef, scale, anchor.dtype, candidates.dtype)
        return loss, reg

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_reg):
        a, c, lse, pos, z = ctx.saved_tensors
        hw, tclip, reg_coef, scale, a_dtype, c_dtype = ctx.args
        need_a, need_c = ctx.needs_input_grad[:2]
        b, d = a.shape
        if not (need_a or need_c):
            return None, None, None, None, None
        dz = torch.sigmoid(z) * (grad_loss / z.numel())  # B x HW
        # d s_pos / d raw = 1 - tanh^2; raw = scale * <a_b, c_{b,loc}>
        draw = -dz * (1 - (pos / tclip).square()) * scale  # B x HW
        grad_a, grad_c = torch.ops.csl_ext.info_nce_lse_backward(
            dz.sum(1).contiguous(), a, c, lse, scale, tclip, _BLOCK_MASK, hw, 0, True, need_c
        )
        grad_a.unsqueeze(1).baddbmm_(draw.unsqueeze(1), c.view(b, hw, d))  # + sum_loc draw * c
        if need_c:  # + draw (x) a_b, an in-place batched outer product
            grad_c.view(b, hw, d).baddbmm_(draw.unsqueeze(2), a.unsqueeze(1))
        coef = float(grad_reg) * reg_coef * scale * scale * 2.0 / (b * c.shape[0])
        if coef != 0.0 and ctx.grams is not None:  # S c = a (c^T c), S^T a = c (a^T a)
            grad_a.addmm_(a, ctx.grams[1], alpha=coef)
            if need_c:
                grad_c.addmm_(c, ctx.grams[0], alpha=coef)
        elif coef != 0.0:
            _score_square_sum_backward(a, c, grad_a, grad_c if need_c else None, coef)
        return (
            grad_a.to(a_dtype) if need_a else None,
            grad_c.to(c_dtype) if need_c else None,
            None,
            None,
            None,
        )


def _candidate_tiles(a: torch.Tensor, m: int):
    """Slices of candidate rows whose score tiles hold ~TILE_ELEMENTS."""
    rows = max(1, _AmdimNce.TILE_ELEMENTS // max(1, a.shape[0]))
    return (slice(start, min(m, start + rows)) for start in range(0, m, rows))


def _use_grams(a: torch.Tensor, c: torch.Tensor) -> bool:
    """The regulariser sum((a c^T)^2) and its gradients in the cheaper of two
    exact forms, by multiply-adds for forward + backward:
    - Gram: sum((a^T a) * (c^T c)), gradients a (c^T c) and c (a^T a):
      2 D^2 (N + M), e.g. B = 512, D = 128 against a 7x7 map (8x cheaper);
    - tiled scores: one GEMM of N x M x D forward, three backward: 4 N M D,
      e.g. AMDIM's D = 1024 against N = 200 anchors and M = 9800 locations,
      where the Gram form would cost 2.6x more.
    """
    n, d = a.shape
    m = c.shape[0]
    return (n + m) * d < 2 * n * m


def _grams(a: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return a.T @ a, c.T @ c  # D x D each


def _score_square_sum(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """sum((a @ c.T) ** 2), a: (N, D), c: (M, D), tile by tile (N M D work)."""
    total = a.new_zeros(())
    for rows in _candidate_tiles(a, c.shape[0]):
        total += torch.mm(a, c[rows].T).square().sum()
    return total


def _score_square_sum_backward(a, c, grad_a, grad_c, coef) -> None:
    """grad_a += coef * S c and grad_c += coef * S^T a, S = a c^T, in place.

    Recomputed in the backward rather than kept from the forward: holding
    them would cost another (M, D) buffer between the passes.
    """
    for rows in _candidate_tiles(a, c.shape[0]):
        scores = torch.mm(a, c[rows].T)  # N x tile
        grad_a.addmm_(scores, c[rows], alpha=coef)
        if grad_c is not None:
            grad_c[rows].addmm_(scores.T, a, alpha=coef)


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
    _check_finite("anchor", anchor)
    _check_finite("positives", positives)


def _check_finite(name: str, value: torch.Tensor) -> None:
    """ValueError if `value` holds NaN or inf. One aminmax pass (NaN
    propagates to both ends): ~10x cheaper on CPU than isfinite().all(),
    which at AMDIM's 10M-element maps cost two GEMMs' time."""
    if torch.compiler.is_compiling() or value.numel() == 0:
        return
    low, high = torch.aminmax(value.detach())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf values")
