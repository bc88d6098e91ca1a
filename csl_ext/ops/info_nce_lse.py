"""Fused, memory-efficient InfoNCE log-sum-exp: `info_nce_lse`.

Every contrastive loss in csl_ext ends in a softmax of one anchor against many
candidates. This op returns each anchor's log-sum-exp over its candidates
without materialising the (N, M) logits: the compiled kernels walk over tiles
of anchor rows and keep only the inputs and the (N,) result for backward.
"""

import math

import torch

from csl_ext._extension import has_extension, warn_fallback
from csl_ext.ops._checks import (
    check_finite,
    check_same,
    check_tensor,
    value_checks_enabled,
)
from csl_ext.ops._dtypes import compute_dtype

__all__ = ["MASKS", "info_nce_logits_reference", "info_nce_lse", "info_nce_lse_reference"]

# Mask modes, in the order of the C++ enum InfoNceMask.
MASKS = ("none", "diag", "block")


def info_nce_lse(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    *,
    scale: float = 1.0,
    softcap: float = 0.0,
    mask: str = "none",
    block_size: int = 1,
    row_offset: int | None = None,
    row_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log-sum-exp of each anchor's logits over the unmasked candidates.

    The logit of anchor i and candidate j is ``l_ij = c * tanh(s_ij / c)``
    when the soft cap ``c = softcap > 0`` (AMDIM's tclip), else ``s_ij``, with
    ``s_ij = scale * <a_i, b_j>``; the result is ``logsumexp_j l_ij`` over the
    j not masked. Never materialises the (N, M) logits.

    Args:
        anchors: (N, D) float16, bfloat16, float32 or float64.
        candidates: (M, D), same dtype and device.
        scale: multiplies every dot product, e.g. 1 / temperature.
        softcap: c > 0 caps the logits to (-c, c) with c * tanh(s / c); 0: off.
        mask: "none"; "diag" excludes j == i + row_offset (SimCLR's
            self-similarity; N == M, or N + row_offset <= M when an offset is
            given); "block" excludes the j with
            j // block_size == i + row_offset (AMDIM's own-image locations;
            block_size must divide M).
        block_size: the block length for mask="block".
        row_offset: global index of anchor 0 among the candidates, e.g.
            rank * N when the candidates are gathered over processes; None
            (the default) means 0 and, for "diag", that N == M.
        row_weight: optional (N,) positive weights w when the caller's loss
            depends on the result as ``c * sum_i w_i lse_i`` (a mean: w = 1),
            so that the incoming gradient is proportional to w. The forward
            then also computes both gradients and the backward only rescales
            them: three GEMMs in all instead of four. Where the proportionality
            can be checked without a host-device sync (CPU, or debug mode:
            csl_ext.ops._checks.set_debug_checks) an incoming gradient that
            is not proportional still gets the exact result (the candidates'
            gradient is recomputed); on a GPU the caller's promise is
            trusted, as the losses of csl_ext keep it by construction.

    Returns:
        lse: (N,), float32 for float16 / bfloat16 inputs (accumulated in
        float32), else the input dtype. -inf for a row whose candidates are
        all masked.

    Raises:
        TypeError, ValueError: naming the argument, for wrong shapes, dtypes,
            devices, masks or non-finite values.

    Example:
        >>> z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
        >>> lse = info_nce_lse(z, z, scale=10.0, mask="diag")  # (8,)
    """
    _validate(anchors, candidates, scale, softcap, mask, block_size, row_offset, row_weight)
    row_offset = row_offset or 0
    mask_id = MASKS.index(mask)
    if not has_extension():
        warn_fallback("info_nce_lse")
        return info_nce_lse_reference(
            anchors, candidates, scale=scale, softcap=softcap, mask=mask, block_size=block_size, row_offset=row_offset
        )
    needs_grad = torch.is_grad_enabled() and (anchors.requires_grad or candidates.requires_grad)
    if row_weight is not None and needs_grad:
        lse, _, _ = torch.ops.csl_ext.info_nce_lse_with_grad(
            anchors, candidates, row_weight.detach(), scale, softcap, mask_id, block_size, row_offset
        )
        return lse
    return torch.ops.csl_ext.info_nce_lse(anchors, candidates, scale, softcap, mask_id, block_size, row_offset)


def _validate(anchors, candidates, scale, softcap, mask, block_size, row_offset, row_weight) -> None:
    check_tensor("anchors", anchors, dim=2)
    check_tensor("candidates", candidates, dim=2)
    check_same(("anchors", "candidates"), anchors, candidates)
    n, m = anchors.shape[0], candidates.shape[0]
    if anchors.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"anchors (N, D) and candidates (M, D) must share D, got {tuple(anchors.shape)} and "
            f"{tuple(candidates.shape)}"
        )
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    if not isinstance(softcap, (int, float)) or not math.isfinite(softcap) or softcap < 0:
        raise ValueError(f"softcap must be a finite number >= 0 (0 disables it), got {softcap!r}")
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    if row_offset is not None and (not isinstance(row_offset, int) or row_offset < 0):
        raise ValueError(f"row_offset must be None or an int >= 0, got {row_offset!r}")
    if mask == "diag" and row_offset is None and n != m:
        raise ValueError(f"mask='diag' needs N == M (or an explicit row_offset), got N={n}, M={m}")
    if mask == "diag" and row_offset is not None and n + row_offset > m:
        raise ValueError(f"mask='diag' needs N + row_offset <= M, got N={n}, M={m}, row_offset={row_offset}")
    if mask == "block" and (not isinstance(block_size, int) or block_size < 1 or m % block_size):
        raise ValueError(f"mask='block' needs an int block_size >= 1 that divides M={m}, got {block_size!r}")
    if row_weight is not None:
        check_tensor("row_weight", row_weight, dim=1)
        if row_weight.shape[0] != n or row_weight.device != anchors.device:
            raise ValueError(
                f"row_weight must have shape (N,) = ({n},) on {anchors.device}, "
                f"got {tuple(row_weight.shape)} on {row_weight.device}"
            )
        if n and value_checks_enabled(row_weight) and not bool((row_weight > 0).all()):
            raise ValueError("row_weight must be > 0 everywhere")
    check_finite("anchors", anchors)
    check_finite("candidates", candidates)


# ----------------------------------------------------------------------------
# torch.library registration: shapes for torch.compile, autograd.
# ----------------------------------------------------------------------------


def _register() -> None:
    lib = "csl_ext::"

    @torch.library.register_fake(lib + "info_nce_lse")
    def _(anchors, candidates, scale, softcap, mask, block_size, row_offset):
        return anchors.new_empty((anchors.shape[0],), dtype=compute_dtype(anchors.dtype))

    @torch.library.register_fake(lib + "info_nce_lse_with_grad")
    def _(anchors, candidates, row_weight, scale, softcap, mask, block_size, row_offset):
        dtype = compute_dtype(anchors.dtype)
        return (
            anchors.new_empty((anchors.shape[0],), dtype=dtype),
            anchors.new_empty(anchors.shape, dtype=dtype),
            candidates.new_empty(candidates.shape, dtype=dtype),
        )

    @torch.library.register_fake(lib + "info_nce_lse_backward")
    def _(grad_lse, anchors, candidates, lse, scale, softcap, mask, block_size, row_offset, need_a, need_b):
        return (
            anchors.new_empty(anchors.shape if need_a else (0,)),
            candidates.new_empty(candidates.shape if need_b else (0,)),
        )

    def _setup_forward(ctx, inputs, output):
        anchors, candidates, *params = inputs
        ctx.params = params  # scale, softcap, mask, block_size, row_offset
        ctx.save_for_backward(anchors, candidates, output)

    def _backward_forward(ctx, grad_lse):
        anchors, candidates, lse = ctx.saved_tensors
        return (*_recompute_grads(ctx, grad_lse, anchors, candidates, lse, *ctx.needs_input_grad[:2]), *[None] * 5)

    torch.library.register_autograd(lib + "info_nce_lse", _backward_forward, setup_context=_setup_forward)

    def _setup_with_grad(ctx, inputs, output):
        anchors, candidates, row_weight, *params = inputs
        lse, grad_anchors, grad_candidates = output
        ctx.params = params
        ctx.save_for_backward(anchors, candidates, row_weight, lse, grad_anchors, grad_candidates)

    def _backward_with_grad(ctx, grad_lse, _grad_a, _grad_b):
        # The gradient outputs are not differentiable; their grads are ignored.
        anchors, candidates, row_weight, lse, grad_a_weighted, grad_b_weighted = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        grad_lse = grad_lse.to(lse.dtype)
        ratio = grad_lse / row_weight.to(lse.dtype)  # (N,)
        grad_a = grad_b = None
        if need_a:  # row i of dA scales with its own incoming gradient: exact
            grad_a = (ratio.unsqueeze(1) * grad_a_weighted).to(anchors.dtype)
        if need_b:
            if _is_uniform(ratio):  # e.g. a mean: dB only rescales
                grad_b = (ratio.mean() * grad_b_weighted).to(candidates.dtype)
            else:
                _, grad_b = _recompute_grads(ctx, grad_lse, anchors, candidates, lse, False, True)
        return (grad_a, grad_b, *[None] * 6)

    torch.library.register_autograd(lib + "info_nce_lse_with_grad", _backward_with_grad, setup_context=_setup_with_grad)

    def _setup_backward(ctx, inputs, output):
        pass

    def _no_double_backward(ctx, *grads):
        raise RuntimeError("info_nce_lse: double backward (create_graph=True through the fused op) is not supported")

    torch.library.register_autograd(lib + "info_nce_lse_backward", _no_double_backward, setup_context=_setup_backward)


def _recompute_grads(ctx, grad_lse, anchors, candidates, lse, need_a, need_b):
    """(dA or None, dB or None) from the backward op, which recomputes tiles."""
    if not (need_a or need_b):
        return None, None
    grad_a, grad_b = torch.ops.csl_ext.info_nce_lse_backward(
        grad_lse.contiguous(), anchors, candidates, lse, *ctx.params, need_a, need_b
    )
    return (grad_a if need_a else None), (grad_b if need_b else None)


def _is_uniform(ratio: torch.Tensor, rtol: float = 1e-6) -> bool:
    """True when every entry equals the mean up to `rtol` (a few float32
    ulps: e.g. 1/N computed two ways). Checked where that costs no host-device
    sync (CPU, or debug mode); on a GPU the row_weight promise is trusted.
    While tracing (fake or functional tensors under torch.compile) a
    data-dependent branch cannot be taken: the traced graph recomputes dB,
    which is exact."""
    if type(ratio) is not torch.Tensor or torch.compiler.is_compiling():
        return False
    if ratio.numel() == 0:
        return True
    if not value_checks_enabled(ratio):
        return True
    spread = (ratio.max() - ratio.min()).abs()
    return bool(spread <= rtol * ratio.abs().max())


# ----------------------------------------------------------------------------
# The reference: slow, obviously correct, materialises the (N, M) logits.
# ----------------------------------------------------------------------------


def info_nce_mask(n: int, m: int, mask: str, block_size: int = 1, row_offset: int = 0, device=None) -> torch.Tensor:
    """Boolean (N, M) mask, True where candidate j is excluded for anchor i."""
    rows = torch.arange(n, device=device).unsqueeze(1) + row_offset
    cols = torch.arange(m, device=device).unsqueeze(0)
    if mask == "diag":
        return cols == rows
    if mask == "block":
        return cols // block_size == rows
    return torch.zeros(n, m, dtype=torch.bool, device=device)


def info_nce_logits_reference(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    *,
    scale: float = 1.0,
    softcap: float = 0.0,
    mask: str = "none",
    block_size: int = 1,
    row_offset: int = 0,
) -> torch.Tensor:
    """The full (N, M) logit matrix of info_nce_lse, masked entries -inf."""
    dtype = compute_dtype(anchors.dtype)
    scores = scale * (anchors.to(dtype) @ candidates.to(dtype).T)  # N x M
    if softcap > 0:
        scores = softcap * torch.tanh(scores / softcap)
    excluded = info_nce_mask(anchors.shape[0], candidates.shape[0], mask, block_size, row_offset, anchors.device)
    return scores.masked_fill(excluded, float("-inf"))


def info_nce_lse_reference(anchors: torch.Tensor, candidates: torch.Tensor, **kwargs) -> torch.Tensor:
    """Row log-sum-exp of `info_nce_logits_reference`: (N,)."""
    return torch.logsumexp(info_nce_logits_reference(anchors, candidates, **kwargs), dim=1)


if has_extension():
    _register()
