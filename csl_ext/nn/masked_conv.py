"""`MaskedConv2d`: the layer form of `csl_ext.ops.masked_conv2d`."""

import math

import torch
from torch import nn

from csl_ext.ops.masked_conv2d import masked_conv2d, vertical_mask

__all__ = ["MaskedConv2d"]


class MaskedConv2d(nn.Module):
    """Conv2d (stride 1, same size) whose output row i sees input rows <= i.

    The PixelCNN-style vertical masking of CPC v2's context network: a
    prediction made at grid row i may not look at the rows below it. The
    weight keeps the full (kh, kw) kernel, initialised like ``nn.Conv2d``, so
    a state dict moves to and from a masked ``nn.Conv2d``; the rows below the
    centre are never used (cropped, not multiplied by zero) and get no
    gradient.

    Args:
        in_channels, out_channels: C_in, C_out.
        kernel_size: odd int or (kh, kw), e.g. 3.
        dilation, groups, bias: as in ``nn.Conv2d``.

    Shape:
        (B, C_in, H, W) -> (B, C_out, H, W).

    Example:
        >>> MaskedConv2d(64, 64, 3)(torch.randn(2, 64, 7, 7)).shape
        torch.Size([2, 64, 7, 7])
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size=3, dilation: int = 1, groups: int = 1, bias: bool = True
    ):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if kh % 2 == 0 or kw % 2 == 0 or kh < 1 or kw < 1:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels={in_channels} and out_channels={out_channels} must be divisible by groups={groups}"
            )
        self.dilation = dilation
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv2d's initialisation, with the fan-in of the visible taps.
        fan_in = self.weight.shape[1] * int(vertical_mask(*self.weight.shape[2:]).sum())
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)  # = kaiming_uniform_(a=sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return masked_conv2d(x, self.weight, self.bias, self.dilation, self.groups)

    def extra_repr(self) -> str:
        c_out, c_in, kh, kw = self.weight.shape
        return (
            f"{c_in * self.groups}, {c_out}, kernel_size=({kh}, {kw}), dilation={self.dilation}, "
            f"groups={self.groups}, bias={self.bias is not None}"
        )
