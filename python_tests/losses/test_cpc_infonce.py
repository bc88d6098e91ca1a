"""cpc_infonce on the fused op against references written from the formula."""

import pytest
import torch

import csl_ext
from csl_ext.losses import cpc_infonce
from csl_ext.losses.cpc_infonce import cpc_infonce_reference

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")


def loop_reference(preds, targets, offsets, scale):
    """Cross-entropy one prediction at a time: tiny sizes only."""
    b, d, h, w = targets.shape
    flat = [targets[bb, :, i, j] for bb in range(b) for i in range(h) for j in range(w)]
    total = 0.0
    for pred, offset in zip(preds, offsets):
        terms = []
        for bb in range(b):
            for i in range(h - offset):
                for j in range(w):
                    logits = torch.stack([scale * pred[bb, :, i, j] @ t for t in flat])
                    true = bb * h * w + (i + offset) * w + j
                    terms.append(torch.logsumexp(logits, 0) - logits[true])
        total = total + torch.stack(terms).mean()
    return total


def _grid(b, d, h, w, offsets, dtype, device, layout="nchw"):
    targets = torch.randn(b, d, h, w, dtype=dtype, device=device)
    preds = [torch.randn(b, d, h - k, w, dtype=dtype, device=device) for k in offsets]
    if layout == "channels_last":
        targets = targets.contiguous(memory_format=torch.channels_last)
        preds = [p.contiguous(memory_format=torch.channels_last) for p in preds]
    elif layout == "strided":  # crops of bigger maps
        targets = torch.randn(b, d, h + 2, w + 1, dtype=dtype, device=device)[:, :, 1:-1, :-1]
        preds = [torch.randn(b, d, h, w, dtype=dtype, device=device)[:, :, k:] for k in offsets]
    return [p.requires_grad_() for p in preds], targets.requires_grad_()


def test_reference_matches_loop():
    preds, targets = _grid(2, 3, 4, 3, (1, 3), torch.float64, "cpu")
    torch.testing.assert_close(
        cpc_infonce_reference(preds, targets, (1, 3), 0.7), loop_reference(preds, targets, (1, 3), 0.7)
    )


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize(
    "b,d,h,w,offsets", [(3, 5, 5, 3, (1, 3, 4)), (2, 7, 7, 7, (1, 2, 3, 4, 5, 6)), (1, 4, 2, 5, (1,))]
)
def test_matches_reference_with_grads(device, layout, b, d, h, w, offsets):
    preds, targets = _grid(b, d, h, w, offsets, torch.float64, device, layout)
    loss = cpc_infonce(preds, targets, offsets, scale=0.7)
    ref = cpc_infonce_reference(preds, targets, offsets, scale=0.7)
    torch.testing.assert_close(loss, ref)
    inputs = (*preds, targets)
    for upstream in (1.0, 2.5):  # the op's fast backward only rescales
        got = torch.autograd.grad(upstream * loss, inputs, retain_graph=True)
        want = torch.autograd.grad(upstream * ref, inputs, retain_graph=True)
        for g, r in zip(got, want):
            torch.testing.assert_close(g, r)


def test_repeated_offsets_and_any_order():
    preds, targets = _grid(2, 4, 5, 2, (3, 1, 3), torch.float64, "cpu")
    torch.testing.assert_close(cpc_infonce(preds, targets, [3, 1, 3]), cpc_infonce_reference(preds, targets, [3, 1, 3]))


def test_gradcheck(device):
    preds, targets = _grid(2, 3, 3, 2, (1, 2), torch.float64, device)
    assert torch.autograd.gradcheck(lambda p0, p1, t: cpc_infonce([p0, p1], t, (1, 2), 0.5), (*preds, targets))


def test_float64_matches_a_float64_reference_to_1e12():
    """Float64 in, float64 math throughout: the row weights 1 / rows included
    (in float32 they were off by ~4e-7)."""
    preds, targets = _grid(3, 8, 7, 7, (2, 3, 5), torch.float64, "cpu")
    got = cpc_infonce(preds, targets, (2, 3, 5))
    want = cpc_infonce_reference(preds, targets, (2, 3, 5))
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_float32_close_to_float64():
    preds, targets = _grid(4, 16, 7, 7, range(1, 7), torch.float32, "cpu")
    got = cpc_infonce(preds, targets, list(range(1, 7)))
    want = cpc_infonce_reference([p.double() for p in preds], targets.double(), list(range(1, 7)))
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_bad_inputs():
    preds, targets = _grid(2, 3, 4, 4, (1, 2), torch.float32, "cpu")
    with pytest.raises(ValueError, match="same length"):
        cpc_infonce(preds, targets, (1,))
    with pytest.raises(ValueError, match=r"offsets\[1\] must be an int in \[1, H - 1\]"):
        cpc_infonce(preds, targets, (1, 4))
    with pytest.raises(ValueError, match=r"preds\[1\] must have shape"):
        cpc_infonce(preds, targets, (1, 3))
    with pytest.raises(ValueError, match="targets must have 4 dimensions"):
        cpc_infonce(preds, targets[0], (1, 2))
    with pytest.raises(TypeError, match="preds must be a sequence"):
        cpc_infonce(preds[0], targets, (1,))
    with pytest.raises(ValueError, match="scale"):
        cpc_infonce(preds, targets, (1, 2), scale=float("inf"))
    with pytest.raises(ValueError, match="same dtype"):
        cpc_infonce([preds[0].double(), preds[1]], targets, (1, 2))
