"""Shape registration of the fused AMDIM NCE op, torch.ops.csl_ext.amdim_nce.

The op returns per-anchor loss terms and squared-score sums together with
the gradients of a weighted sum of them, so it needs no autograd formula of
its own: csl_ext.losses.amdim_nce wraps it in an autograd.Function.
"""
import torch

from csl_ext._extension import has_extension
from csl_ext.ops.reference import compute_dtype


def _register() -> None:
    @torch.library.register_fake("csl_ext::amdim_nce")
    def _(anchors, candidates, block_size, scale, tclip, loss_weight, reg_weight, compute_grad):
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
