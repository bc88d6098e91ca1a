"""masked_conv2d and MaskedConv2d: causality along rows and parity with a
convolution whose weight is multiplied by the mask."""
import importlib

import pytest
import torch

import csl_ext
from csl_ext.nn import MaskedConv2d
from csl_ext.ops import masked_conv2d, masked_conv2d_reference, vertical_mask

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")

# (C_in, C_out, kh, kw, dilation, groups)
CASES = [(3, 5, 3, 3, 1, 1), (4, 6, 5, 3, 1, 2), (2, 3, 3, 5, 2, 1), (3, 4, 1, 1, 1, 1), (4, 4, 7, 1, 1, 4)]


@pytest.mark.parametrize("c_in,c_out,kh,kw,dilation,groups", CASES)
def test_output_row_sees_only_rows_above(device, c_in, c_out, kh, kw, dilation, groups):
    weight = torch.randn(c_out, c_in // groups, kh, kw, dtype=torch.float64, device=device)
    x = torch.randn(2, c_in, 7, 6, dtype=torch.float64, device=device)
    out = masked_conv2d(x, weight, None, dilation, groups)
    assert out.shape == (2, c_out, 7, 6)
    for i in range(7):
        perturbed = x.clone()
        perturbed[:, :, i + 1 :] += torch.randn_like(perturbed[:, :, i + 1 :])
        again = masked_conv2d(perturbed, weight, None, dilation, groups)
        torch.testing.assert_close(again[:, :, : i + 1], out[:, :, : i + 1], rtol=0, atol=0)
        if i + 1 < 7 and kh > 1:  # and the rows below do change
            assert not torch.equal(again[:, :, i + 1 :], out[:, :, i + 1 :])


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("c_in,c_out,kh,kw,dilation,groups", CASES)
def test_matches_masked_weight_with_grads(device, contiguous, c_in, c_out, kh, kw, dilation, groups):
    weight = torch.randn(c_out, c_in // groups, kh, kw, dtype=torch.float64, device=device, requires_grad=True)
    bias = torch.randn(c_out, dtype=torch.float64, device=device, requires_grad=True)
    x = torch.randn(2, c_in, 5, 8, dtype=torch.float64, device=device)
    if not contiguous:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = masked_conv2d(x, weight, bias, dilation, groups)
    ref = masked_conv2d_reference(x, weight, bias, dilation, groups)
    torch.testing.assert_close(out, ref)
    upstream = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, weight, bias), upstream)
    want = torch.autograd.grad(ref, (x, weight, bias), upstream)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r)
    assert not got[1][:, :, kh // 2 + 1 :].any()  # masked taps: no gradient


def test_gradcheck(device):
    args = [torch.randn(s, dtype=torch.float64, device=device, requires_grad=True) for s in [(1, 2, 4, 3), (3, 2, 3, 3), (3,)]]
    assert torch.autograd.gradcheck(masked_conv2d, tuple(args))


def test_opcheck(device):
    x, w, b = torch.randn(2, 3, 5, 4, device=device), torch.randn(4, 3, 3, 3, device=device), torch.randn(4, device=device)
    torch.library.opcheck(torch.ops.csl_ext.masked_conv2d, (x.requires_grad_(), w.requires_grad_(), b, 1, 1))


def test_module_matches_masked_conv2d_layer():
    layer = MaskedConv2d(4, 6, 3)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    conv.load_state_dict(layer.state_dict())
    with torch.no_grad():
        conv.weight.mul_(vertical_mask(3, 3))
    x = torch.randn(2, 4, 7, 7)
    torch.testing.assert_close(layer(x), conv(x))
    layer(x).sum().backward()
    assert layer.weight.grad[:, :, 2].abs().sum() == 0 and layer.weight.grad[:, :, :2].abs().sum() > 0
    assert layer.bias.grad is not None


def test_bad_arguments():
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(ValueError, match="odd kernel size"):
        masked_conv2d(x, torch.randn(2, 4, 2, 3))
    with pytest.raises(ValueError, match="does not fit input channels"):
        masked_conv2d(x, torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="bias must have shape"):
        masked_conv2d(x, torch.randn(2, 4, 3, 3), torch.randn(3))
    with pytest.raises(ValueError, match="dilation must be an int >= 1"):
        masked_conv2d(x, torch.randn(2, 4, 3, 3), dilation=0)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        MaskedConv2d(4, 4, 2)


def test_fallback_without_extension(monkeypatch):
    """The pure-PyTorch crop-and-pad path used when the op is not built."""
    module = importlib.import_module("csl_ext.ops.masked_conv2d")

    x, w, b = torch.randn(2, 4, 6, 5, dtype=torch.float64), torch.randn(6, 2, 5, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    monkeypatch.setattr(module, "has_extension", lambda: False)
    monkeypatch.setattr(module, "warn_fallback", lambda op: None)
    torch.testing.assert_close(masked_conv2d(x, w, b, 2, 2), masked_conv2d_reference(x, w, b, 2, 2))
