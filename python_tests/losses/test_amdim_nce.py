"""amdim_nce on the fused op against references written from the formula."""

import importlib
import math

import pytest
import torch

import csl_ext
from csl_ext.losses import amdim_nce
from csl_ext.ops import amdim_nce_reference

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")


def loop_reference(anchor, positives, tclip, reg_coef):
    """The AMDIM formula one (anchor, location) at a time: tiny sizes only."""
    b, d, h, w = positives.shape
    raw = [
        [[anchor[i] @ positives[j, :, y, x] / math.sqrt(d) for y in range(h) for x in range(w)] for j in range(b)]
        for i in range(b)
    ]
    raw = torch.stack([torch.stack([torch.stack(r) for r in row]) for row in raw])  # B x B x HW
    reg = reg_coef * (raw**2).mean()
    s = tclip * torch.tanh(raw / tclip)
    terms = []
    for i in range(b):
        negatives = torch.cat([s[i, j] for j in range(b) if j != i]) if b > 1 else s.new_empty(0)
        for loc in range(h * w):
            pos = s[i, i, loc]
            terms.append(pos - torch.log(torch.exp(pos) + torch.exp(negatives).sum()))
    return -torch.stack(terms).mean(), reg


def _maps(b, d, h, w, dtype, device, layout="nchw"):
    anchor = torch.randn(b, d, dtype=dtype, device=device)
    positives = torch.randn(b, d, h, w, dtype=dtype, device=device)
    if layout == "channels_last":
        positives = positives.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":  # every other channel and a transposed anchor
        positives = torch.randn(b, 2 * d, h, w, dtype=dtype, device=device)[:, ::2]
        anchor = torch.randn(d, b, dtype=dtype, device=device).T
    return anchor.requires_grad_(), positives.requires_grad_()


def test_reference_matches_loop():
    anchor, positives = _maps(3, 5, 2, 3, torch.float64, "cpu")
    for got, want in zip(amdim_nce_reference(anchor, positives, 2.0, 0.1), loop_reference(anchor, positives, 2.0, 0.1)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize(
    "b,d,h,w,tclip",
    # 7x6: NCHW maps read in place (L >= MIN_LOCATIONS_IN_PLACE); the others are copied into rows
    [(5, 7, 3, 2, 10.0), (4, 9, 1, 1, 1.5), (7, 3, 5, 5, 0.7), (1, 6, 3, 3, 10.0), (3, 5, 7, 6, 2.0)],
)
def test_matches_reference_with_grads(device, layout, b, d, h, w, tclip):
    anchor, positives = _maps(b, d, h, w, torch.float64, device, layout)
    loss, reg = amdim_nce(anchor, positives, tclip=tclip, reg_coef=0.3)
    ref_loss, ref_reg = amdim_nce_reference(anchor, positives, tclip, 0.3)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(reg, ref_reg)
    # Different weights on the two outputs check each gradient separately.
    grads = torch.autograd.grad(0.7 * loss + 1.9 * reg, (anchor, positives))
    ref_grads = torch.autograd.grad(0.7 * ref_loss + 1.9 * ref_reg, (anchor, positives))
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_single_image_has_no_negatives():
    loss, _ = amdim_nce(*_maps(1, 4, 2, 2, torch.float64, "cpu"))
    assert loss.item() == 0.0


@pytest.mark.parametrize("path", ["fused", "device_factors"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (2.5, 2.5), (1.0, 0.0), (0.0, 1.0), (0.3, -1.2)])
def test_backward_for_any_weights_of_loss_and_reg(device, monkeypatch, path, layout, weights):
    """Fused (CPU): equal weights rescale the forward's gradients, others
    re-run the op. Device factors (a GPU outside debug mode, forced here):
    the backward re-runs the op with the incoming gradients read on the
    device, with no host sync."""
    if path == "device_factors":
        monkeypatch.setattr(importlib.import_module("csl_ext.ops.amdim_nce"), "value_checks_enabled", lambda t: False)
    anchor, positives = _maps(6, 5, 3, 4, torch.float64, device, layout)
    loss, reg = amdim_nce(anchor, positives, 3.0, 0.2)
    ref_loss, ref_reg = amdim_nce_reference(anchor, positives, 3.0, 0.2)
    got = torch.autograd.grad(weights[0] * loss + weights[1] * reg, (anchor, positives))
    want = torch.autograd.grad(weights[0] * ref_loss + weights[1] * ref_reg, (anchor, positives))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_no_grad_forward():
    anchor, positives = _maps(4, 3, 2, 2, torch.float64, "cpu")
    with torch.no_grad():
        got = amdim_nce(anchor, positives)
    for g, w in zip(got, amdim_nce_reference(anchor, positives)):
        torch.testing.assert_close(g, w.detach())


def test_gradcheck(device):
    anchor, positives = _maps(3, 5, 3, 1, torch.float64, device)
    assert torch.autograd.gradcheck(lambda a, p: amdim_nce(a, p, 2.0, 0.2), (anchor, positives))


def test_only_positives_need_grad():
    anchor, positives = _maps(4, 5, 2, 2, torch.float64, "cpu")
    (grad,) = torch.autograd.grad(sum(amdim_nce(anchor.detach(), positives)), (positives,))
    (want,) = torch.autograd.grad(sum(amdim_nce_reference(anchor.detach(), positives)), (positives,))
    torch.testing.assert_close(grad, want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_close_to_float32(dtype):
    anchor, positives = _maps(6, 16, 3, 3, torch.float32, "cpu")
    want = amdim_nce_reference(anchor, positives)
    got = amdim_nce(anchor.to(dtype), positives.to(dtype))
    assert all(g.dtype == dtype for g in got)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.float(), w, atol=0.05, rtol=0.02)


@pytest.mark.parametrize(
    "args,match",
    [
        (((4, 8), (4, 8, 3)), "positives must have 4 dimensions"),
        (((4, 8), (5, 8, 3, 3)), "share B and D"),
        (((4, 7), (4, 8, 3, 3)), "share B and D"),
    ],
)
def test_bad_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        amdim_nce(torch.randn(*args[0]), torch.randn(*args[1]))


def test_bad_values():
    a, p = torch.randn(3, 4), torch.randn(3, 4, 2, 2)
    with pytest.raises(ValueError, match="tclip"):
        amdim_nce(a, p, tclip=0.0)
    with pytest.raises(ValueError, match="reg_coef"):
        amdim_nce(a, p, reg_coef=-1.0)
    for reg_coef in (0.05, 0.0):  # found from the outputs, or checked up front
        for value in (float("nan"), float("inf"), -float("inf")):
            bad = p.clone()
            bad[1, 2, 0, 1] = value
            with pytest.raises(ValueError, match="positives contains NaN or inf"):
                amdim_nce(a, bad, reg_coef=reg_coef)
            bad_anchor = a.clone()
            bad_anchor[2, 3] = value
            with pytest.raises(ValueError, match="anchor contains NaN or inf"):
                amdim_nce(bad_anchor, p, reg_coef=reg_coef)
    with pytest.raises(ValueError, match="same dtype"):
        amdim_nce(a.double(), p)
    with pytest.raises(ValueError, match="floating"):
        amdim_nce(a.long(), p.long())


def test_fallback_without_extension(monkeypatch):
    module = importlib.import_module("csl_ext.ops.amdim_nce")

    anchor, positives = _maps(3, 5, 2, 2, torch.float64, "cpu")
    want = amdim_nce(anchor, positives)
    monkeypatch.setattr(module, "has_extension", lambda: False)
    monkeypatch.setattr(module, "warn_fallback", lambda op: None)
    for got, w in zip(amdim_nce(anchor, positives), want):
        torch.testing.assert_close(got, w)
