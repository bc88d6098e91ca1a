"""The fused AMDIM NCE op (torch.ops.csl_ext.amdim_nce) against the
materialised formula of csl_ext.losses.amdim_nce_reference."""
import math

import pytest
import torch

import csl_ext
from csl_ext.losses.amdim_nce import amdim_nce_reference

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")


def _op(anchor, positives, tclip, reg_coef, compute_grad=True):
    """The op's outputs mapped to (loss, reg, grad_anchor, grad_positives)
    of loss + reg."""
    b, d, h, w = positives.shape
    hw = h * w
    candidates = positives.permute(0, 2, 3, 1).reshape(b * hw, d)
    loss_rows, square_rows, grad_a, grad_c = torch.ops.csl_ext.amdim_nce(
        anchor, candidates, hw, 1 / math.sqrt(d), tclip, 1 / (b * hw), reg_coef / (b * b * hw), compute_grad
    )
    loss = loss_rows.sum() / (b * hw)
    reg = reg_coef * square_rows.sum() / (b * b * hw)
    if not compute_grad:
        return loss, reg, grad_a, grad_c
    return loss, reg, grad_a, grad_c.view(b, h, w, d).permute(0, 3, 1, 2)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("b,d,h,w", [(1, 3, 2, 2), (5, 7, 3, 2), (9, 13, 5, 5), (300, 4, 2, 2)])
def test_matches_reference(device, dtype, tol, b, d, h, w):
    anchor = torch.randn(b, d, dtype=dtype, device=device, requires_grad=True)
    positives = torch.randn(b, d, h, w, dtype=dtype, device=device, requires_grad=True)
    loss_ref, reg_ref = amdim_nce_reference(anchor, positives, 2.5, 0.3)
    grads_ref = torch.autograd.grad(loss_ref + reg_ref, (anchor, positives))
    loss, reg, grad_a, grad_p = _op(anchor.detach(), positives.detach(), 2.5, 0.3)
    torch.testing.assert_close(loss, loss_ref.detach(), atol=tol, rtol=tol)
    torch.testing.assert_close(reg, reg_ref.detach(), atol=tol, rtol=tol)
    torch.testing.assert_close(grad_a, grads_ref[0], atol=tol, rtol=tol)
    torch.testing.assert_close(grad_p, grads_ref[1], atol=tol, rtol=tol)


def test_without_gradients_returns_empty_ones(device):
    anchor, positives = torch.randn(4, 5, device=device), torch.randn(4, 5, 2, 3, device=device)
    loss, reg, grad_a, grad_c = _op(anchor, positives, 10.0, 0.05, compute_grad=False)
    loss_ref, reg_ref = amdim_nce_reference(anchor, positives, 10.0, 0.05)
    torch.testing.assert_close(loss, loss_ref)
    torch.testing.assert_close(reg, reg_ref)
    assert grad_a.shape == (0,) and grad_c.shape == (0,)


def test_opcheck(device):
    anchor, candidates = torch.randn(3, 4, device=device), torch.randn(3 * 6, 4, device=device)
    for compute_grad in (True, False):
        torch.library.opcheck(torch.ops.csl_ext.amdim_nce, (anchor, candidates, 6, 0.5, 10.0, 0.1, 0.01, compute_grad))


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.randn(3, 4), torch.randn(17, 4), 6), "M = N \\* block_size"),
        ((torch.randn(3, 4), torch.randn(18, 5), 6), "share D"),
        ((torch.randn(3), torch.randn(18, 4), 6), "2-D"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.csl_ext.amdim_nce(*args, 0.5, 10.0, 0.1, 0.01, True)
