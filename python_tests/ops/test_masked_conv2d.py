"""masked_conv2d and MaskedConv2d: causality along rows and parity with a
convolution whose weight is multiplied by the mask (pure PyTorch: no
compiled extension needed)."""

import pytest
import torch

from csl_ext.nn import MaskedConv2d
from csl_ext.ops import masked_conv2d, masked_conv2d_reference, vertical_mask

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
    args = [
        torch.randn(s, dtype=torch.float64, device=device, requires_grad=True)
        for s in [(1, 2, 4, 3), (3, 2, 3, 3), (3,)]
    ]
    assert torch.autograd.gradcheck(masked_conv2d, tuple(args))


@pytest.mark.parametrize("h,w", [(1, 1), (1, 6), (6, 1), (2, 9)])
def test_odd_shapes(device, h, w):
    """Images no taller than the kernel, single rows and columns, an empty batch."""
    x, weight = torch.randn(3, 4, h, w, device=device), torch.randn(5, 4, 5, 3, device=device)
    torch.testing.assert_close(masked_conv2d(x, weight), masked_conv2d_reference(x, weight))
    assert masked_conv2d(x[:0], weight).shape == (0, 5, h, w)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(device, dtype):
    """The error against a float64 reference is at most twice the eager
    masked-weight convolution's in the same dtype (CPU float16 conv included)."""
    x, weight, bias = (
        torch.randn(2, 8, 7, 7, device=device),
        torch.randn(16, 8, 3, 3, device=device),
        torch.randn(16, device=device),
    )
    want = masked_conv2d_reference(x.double(), weight.double(), bias.double())
    got = masked_conv2d(x.to(dtype), weight.to(dtype), bias.to(dtype))
    eager = masked_conv2d_reference(x.to(dtype), weight.to(dtype), bias.to(dtype))
    assert got.dtype == dtype
    assert (got.double() - want).abs().max() <= 2 * (eager.double() - want).abs().max() + 1e-3


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
