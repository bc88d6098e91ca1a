"""Vertically masked 2-D convolution (CPC v2's context network): `masked_conv2d`.

Pure PyTorch on purpose: the op is a crop of the kernel, a pad and one
``F.conv2d``, so every device, dtype, autograd and ``torch.compile`` come from
the convolution itself; a compiled op would only call ``at::conv2d``.

- [0]: PixelCNN, van den Oord et al. 2016, https://arxiv.org/abs/1606.05328
- [1]: CPC v2, Hénaff et al. 2020, §3 (the context network, a PixelCNN-style
  autoregressive model over the grid), https://arxiv.org/abs/1905.09272
"""

import torch
import torch.nn.functional as F

from csl_ext.ops._checks import check_same, check_tensor

__all__ = ["masked_conv2d", "masked_conv2d_reference", "vertical_mask"]


def masked_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    dilation: int = 1,
    groups: int = 1,
) -> torch.Tensor:
    """Convolution whose output row i depends only on input rows <= i.

    Equal to ``conv2d(input, weight * vertical_mask(kh, kw), bias,
    padding=(kh // 2 * dilation, kw // 2 * dilation))`` (stride 1, same
    output size), but the kernel rows below the centre are cropped and the
    input is padded on top only: no FLOPs are spent on masked taps. Columns
    are not masked (CPC v2 orders the grid by rows only). The weight's
    masked rows get a zero gradient.

    Args:
        input: (B, C_in, H, W).
        weight: (C_out, C_in / groups, kh, kw), kh and kw odd.
        bias: optional (C_out,).
        dilation: >= 1, the same along both axes.
        groups: >= 1, as in ``torch.nn.functional.conv2d``.

    Returns:
        (B, C_out, H, W).

    Raises:
        TypeError, ValueError: naming the argument.

    Example:
        >>> y = masked_conv2d(torch.randn(2, 8, 7, 7), torch.randn(16, 8, 3, 3))
    """
    _validate(input, weight, bias, dilation, groups)
    kh, kw = weight.shape[2:]
    visible = weight[:, :, : kh // 2 + 1]  # e.g. 3x3: rows 0 and 1 (the centre)
    padded = F.pad(input, (0, 0, kh // 2 * dilation, 0))  # on top only: (B, C_in, H + kh // 2 * dilation, W)
    return F.conv2d(padded, visible, bias, 1, (0, kw // 2 * dilation), dilation, groups)


def vertical_mask(kh: int, kw: int, *, device=None, dtype=None) -> torch.Tensor:
    """(kh, kw) mask: 1 on the rows above and at the centre, 0 below."""
    mask = torch.zeros(kh, kw, device=device, dtype=dtype)
    mask[: kh // 2 + 1] = 1
    return mask


def masked_conv2d_reference(input, weight, bias=None, dilation=1, groups=1) -> torch.Tensor:
    """The masked convolution the slow way: the full kernel times the mask."""
    kh, kw = weight.shape[2:]
    mask = vertical_mask(kh, kw, device=weight.device, dtype=weight.dtype)
    return F.conv2d(input, weight * mask, bias, 1, (kh // 2 * dilation, kw // 2 * dilation), dilation, groups)


def _validate(input, weight, bias, dilation, groups) -> None:
    check_tensor("input", input, dim=4)
    check_tensor("weight", weight, dim=4)
    check_same(("input", "weight"), input, weight)
    for name, value in (("dilation", dilation), ("groups", groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    c_out, c_in_per_group, kh, kw = weight.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"weight must have an odd kernel size (a centre tap), got {kh}x{kw}")
    if input.shape[1] != c_in_per_group * groups or c_out % groups:
        raise ValueError(
            f"weight (C_out, C_in / groups, kh, kw) = {tuple(weight.shape)} does not fit input channels "
            f"C_in = {input.shape[1]} with groups = {groups}"
        )
    if bias is not None:
        check_tensor("bias", bias, dim=1)
        check_same(("bias", "weight"), bias, weight)
        if bias.shape[0] != c_out:
            raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {tuple(bias.shape)}")
