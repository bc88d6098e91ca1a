"""The fused AMDIM NCE op (torch.ops.csl_ext.amdim_nce) against the
materialised formula of csl_ext.ops.amdim_nce_reference: both candidate
layouts (rows and in-place maps), anchor block offsets and device-side
weight factors."""

import math

import pytest
import torch

import csl_ext
from csl_ext.ops import amdim_nce_reference, amdim_nce_terms

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")


def _op(anchor, maps, tclip, reg_coef, layout="rows", block_offset=0, factors=None, compute_grad=True):
    """The op's outputs mapped to (loss, reg, grad_anchor, grad_maps) of
    g_loss * loss + g_reg * reg, with (g_loss, g_reg) = factors or (1, 1)."""
    n = anchor.shape[0]
    k, d, h, w = maps.shape
    hw = h * w
    if layout == "rows":
        candidates = maps.permute(0, 2, 3, 1).reshape(k * hw, d)
    else:
        candidates = maps.reshape(k, d, hw)
    loss_rows, square_rows, grad_a, grad_c = torch.ops.csl_ext.amdim_nce(
        anchor,
        candidates,
        factors,
        hw,
        block_offset,
        1 / math.sqrt(d),
        tclip,
        1 / (n * hw),
        reg_coef / (n * k * hw),
        compute_grad,
    )
    loss = loss_rows.sum() / (n * hw)
    reg = reg_coef * square_rows.sum() / (n * k * hw)
    if not compute_grad:
        return loss, reg, grad_a, grad_c
    if layout == "rows":
        grad_c = grad_c.view(k, h, w, d).permute(0, 3, 1, 2)
    return loss, reg, grad_a, grad_c.view(k, d, h, w)


@pytest.mark.parametrize("layout", ["rows", "maps"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("b,d,h,w", [(1, 3, 2, 2), (5, 7, 3, 2), (9, 13, 5, 5), (300, 4, 2, 2)])
def test_matches_reference(device, layout, dtype, tol, b, d, h, w):
    anchor = torch.randn(b, d, dtype=dtype, device=device, requires_grad=True)
    positives = torch.randn(b, d, h, w, dtype=dtype, device=device, requires_grad=True)
    loss_ref, reg_ref = amdim_nce_reference(anchor, positives, 2.5, 0.3)
    grads_ref = torch.autograd.grad(loss_ref + reg_ref, (anchor, positives))
    loss, reg, grad_a, grad_p = _op(anchor.detach(), positives.detach(), 2.5, 0.3, layout)
    torch.testing.assert_close(loss, loss_ref.detach(), atol=tol, rtol=tol)
    torch.testing.assert_close(reg, reg_ref.detach(), atol=tol, rtol=tol)
    torch.testing.assert_close(grad_a, grads_ref[0], atol=tol, rtol=tol)
    torch.testing.assert_close(grad_p, grads_ref[1], atol=tol, rtol=tol)


@pytest.mark.parametrize("layout", ["rows", "maps"])
@pytest.mark.parametrize("block_offset", [0, 3, 6])
def test_block_offset_and_weight_factors_match_reference(device, layout, block_offset):
    """Anchors 0..N-1 own maps block_offset..block_offset+N-1 of K (a
    gathered batch); factors weigh loss and reg on the device."""
    n, k, d = 4, 10, 6
    anchor = torch.randn(n, d, dtype=torch.float64, device=device, requires_grad=True)
    maps = torch.randn(k, d, 3, 2, dtype=torch.float64, device=device, requires_grad=True)
    loss_ref, reg_ref = amdim_nce_reference(anchor, maps, 1.5, 0.4, block_offset)
    grads_ref = torch.autograd.grad(0.7 * loss_ref + 1.9 * reg_ref, (anchor, maps))
    factors = torch.tensor([0.7, 1.9], dtype=torch.float64, device=device)
    loss, reg, grad_a, grad_m = _op(anchor.detach(), maps.detach(), 1.5, 0.4, layout, block_offset, factors)
    torch.testing.assert_close(loss, loss_ref.detach())
    torch.testing.assert_close(reg, reg_ref.detach())
    torch.testing.assert_close(grad_a, grads_ref[0])
    torch.testing.assert_close(grad_m, grads_ref[1])


@pytest.mark.parametrize("tclip", [0.5, 10.0, 60.0])
def test_maps_and_rows_agree_in_float32(tclip):
    """Both layouts on a shape with several tiles per thread (the maps' batched
    GEMMs against the rows' single GEMM), including caps large enough that
    the logits span more than float32's exp range."""
    anchor, maps = torch.randn(70, 33) * 3, torch.randn(70, 33, 7, 7) * 3
    rows = _op(anchor, maps, tclip, 0.05, "rows")
    in_place = _op(anchor, maps, tclip, 0.05, "maps")
    want = amdim_nce_reference(anchor.double(), maps.double(), tclip, 0.05)
    for got in (rows, in_place):
        torch.testing.assert_close(got[0].double(), want[0], rtol=2e-5, atol=2e-5)
        torch.testing.assert_close(got[1].double(), want[1], rtol=2e-5, atol=2e-5)
    for got, other in zip(rows[2:], in_place[2:]):
        torch.testing.assert_close(got, other, rtol=1e-4, atol=1e-6)


def test_without_gradients_returns_empty_ones(device):
    anchor, positives = torch.randn(4, 5, device=device), torch.randn(4, 5, 2, 3, device=device)
    loss, reg, grad_a, grad_c = _op(anchor, positives, 10.0, 0.05, compute_grad=False)
    loss_ref, reg_ref = amdim_nce_reference(anchor, positives, 10.0, 0.05)
    torch.testing.assert_close(loss, loss_ref)
    torch.testing.assert_close(reg, reg_ref)
    assert grad_a.shape == (0,) and grad_c.shape == (0,)


def test_non_contiguous_maps_through_the_wrapper(device):
    anchor = torch.randn(9, 5, dtype=torch.float64, device=device).T[:5].T.contiguous()
    maps = torch.randn(9, 10, 3, 3, dtype=torch.float64, device=device)[:, ::2]  # strided channels
    loss, reg = amdim_nce_terms(anchor, maps, 3.0, 0.1)
    want = amdim_nce_reference(anchor, maps, 3.0, 0.1)
    torch.testing.assert_close(loss, want[0])
    torch.testing.assert_close(reg, want[1])


def test_opcheck(device):
    anchor = torch.randn(3, 4, device=device)
    rows, maps = torch.randn(5 * 6, 4, device=device), torch.randn(5, 4, 6, device=device)
    factors = torch.tensor([0.5, 2.0], device=device)
    for candidates in (rows, maps):
        for compute_grad, weights in ((True, None), (False, None), (True, factors)):
            torch.library.opcheck(
                torch.ops.csl_ext.amdim_nce, (anchor, candidates, weights, 6, 2, 0.5, 10.0, 0.1, 0.01, compute_grad)
            )


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.randn(3, 4), torch.randn(17, 4), None, 6, 0), "M = K \\* block_size"),
        ((torch.randn(3, 4), torch.randn(18, 5), None, 6, 0), "share D"),
        ((torch.randn(3), torch.randn(18, 4), None, 6, 0), "2-D"),
        ((torch.randn(3, 4), torch.randn(3, 4, 5), None, 6, 0), "L = block_size"),
        ((torch.randn(3, 4), torch.randn(18, 4), None, 6, 1), "block_offset"),
        ((torch.randn(3, 4), torch.randn(18, 4), torch.ones(3), 6, 0), "weight_factors"),
        ((torch.randn(3, 4), torch.randn(18, 4).double(), None, 6, 0), "floating dtype"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.csl_ext.amdim_nce(*args, 0.5, 10.0, 0.1, 0.01, True)
