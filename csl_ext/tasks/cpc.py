"""CPC v2's task: a masked-convolution context network over the patch grid,
a 1x1 target head and one 1x1 prediction head per step, scored with the
multi-step InfoNCE.

- [0]: CPC v2, Hénaff et al. 2020, §3 and Appendix A.2 (context network:
  PixelCNN-style residual blocks; predictions of the rows below),
  https://arxiv.org/abs/1905.09272
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csl_ext.losses.cpc_infonce import cpc_infonce
from csl_ext.nn.masked_conv import MaskedConv2d

__all__ = ["ContextNetwork", "CPCTask"]


class _MaskedResidualBlock(nn.Module):
    """x + 1x1(ReLU(masked kxk(ReLU(1x1(ReLU(x)))))): the 1x1 convs see one
    location, the masked conv rows <= i, so the block stays causal in rows."""

    def __init__(self, channels: int, hidden: int, kernel_size: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.masked = MaskedConv2d(hidden, hidden, kernel_size)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.masked(F.relu(self.reduce(F.relu(x))))
        return x + self.expand(F.relu(h))


class ContextNetwork(nn.Sequential):
    """A stack of residual masked-convolution blocks: context row i
    summarises grid rows 0..i only.

    Args:
        channels: D of the grid.
        hidden: bottleneck width, e.g. D // 2 (default).
        num_blocks: e.g. 5 (CPC v2 used 12 with 3x3 masked convs).
        kernel_size: odd, e.g. 3.

    Shape:
        (B, D, H, W) -> (B, D, H, W).
    """

    def __init__(self, channels: int, hidden: int | None = None, num_blocks: int = 5, kernel_size: int = 3):
        hidden = hidden or max(1, channels // 2)
        super().__init__(*[_MaskedResidualBlock(channels, hidden, kernel_size) for _ in range(num_blocks)])


class CPCTask(nn.Module):
    """Predicts each grid row's targets `offsets[n]` rows below from the
    context of the rows above, contrasted against every target of the batch.

    Args:
        dim: D of the encoder's grid.
        offsets: steps, e.g. range(1, 6); each needs H > offset.
        target_dim: channels of the targets and predictions (default dim).
        context_blocks, hidden, kernel_size: of the ContextNetwork.
        scale: multiplies the scores of cpc_infonce (1: a plain dot product).

    Shape:
        forward(grid): (B, D, H, W) from e.g. PatchEncoder -> scalar loss.

    Example:
        >>> task = CPCTask(32, offsets=(1, 2, 3), context_blocks=2)
        >>> loss = task(torch.randn(4, 32, 7, 7))
    """

    def __init__(self, dim: int, offsets: Sequence[int] = (1, 2, 3, 4, 5), target_dim: int | None = None, context_blocks: int = 5, hidden: int | None = None, kernel_size: int = 3, scale: float = 1.0):
        super().__init__()
        target_dim = target_dim or dim
        self.offsets = tuple(offsets)
        if not self.offsets:
            raise ValueError("offsets must name at least one step, e.g. (1, 2, 3)")
        self.scale = scale
        self.context = ContextNetwork(dim, hidden, context_blocks, kernel_size)
        self.target_head = nn.Conv2d(dim, target_dim, 1)
        self.prediction_heads = nn.ModuleList(nn.Conv2d(dim, target_dim, 1) for _ in self.offsets)

    def forward(self, grid: torch.Tensor, *, gather: bool = False) -> torch.Tensor:
        if grid.dim() != 4:
            raise ValueError(f"grid must be (B, D, H, W), got shape {tuple(grid.shape)}")
        height = grid.shape[2]
        if max(self.offsets) >= height:
            raise ValueError(f"offsets {self.offsets} need a grid taller than {max(self.offsets)} rows, got H = {height}")
        context = self.context(grid)
        targets = self.target_head(grid)
        # Context rows 0 .. H-1-k predict the targets k rows below.
        preds = [head(context[:, :, : height - k]) for head, k in zip(self.prediction_heads, self.offsets)]
        return cpc_infonce(preds, targets, self.offsets, self.scale, gather=gather)
