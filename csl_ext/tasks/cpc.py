"""CPC v2's task: a masked-convolution context network over the patch grid,
a 1x1 target head and one 1x1 prediction head per step, scored with the
multi-step InfoNCE.

- [0]: CPC v2, Hénaff et al. 2020, §3 and Appendix A.2 (context network:
  PixelCNN-style residual blocks; predictions of the rows below and above),
  https://arxiv.org/abs/1905.09272
- [1]: pl_bolts, losses/self_supervised_learning.py: CPCTask (target_dim 64,
  embed_scale 0.1, steps 2 .. H-1, one direction), the code of Falcon & Cho 2020
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csl_ext.losses.cpc_infonce import cpc_infonce
from csl_ext.nn.masked_conv import MaskedConv2d

__all__ = ["DIRECTIONS", "CPCTask", "ContextNetwork", "default_offsets"]


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
        num_blocks: e.g. 5.
        kernel_size: odd, e.g. 3.

    Shape:
        (B, D, H, W) -> (B, D, H, W).
    """

    def __init__(self, channels: int, hidden: int | None = None, num_blocks: int = 5, kernel_size: int = 3):
        hidden = hidden or max(1, channels // 2)
        super().__init__(*[_MaskedResidualBlock(channels, hidden, kernel_size) for _ in range(num_blocks)])


DIRECTIONS = ("down", "up")


def default_offsets(height: int, patch_size: int = 2, stride: int = 1) -> tuple[int, ...]:
    """Every step k whose target row shares no pixels with the context rows:
    row i covers pixels [i*stride, i*stride + patch_size), so k must be at
    least ceil(patch_size / stride), e.g. 2 for patches of S/4 at stride
    S/8; steps up to height - 1 (2..6 on a 7-row grid, as pl_bolts)."""
    first = -(-patch_size // stride)
    return tuple(range(first, height))


class CPCTask(nn.Module):
    """Predicts each grid row's targets `offsets[n]` rows below (and, with
    "up", above) from the context of the rows above (below), contrasted
    against every target of the batch.

    Args:
        dim: D of the encoder's grid.
        offsets: steps; each needs H > offset. Default (2, 3, 4, 5, 6):
            `default_offsets` of a 7-row grid of patches overlapping by
            half, so that no target shares pixels with its context (a step
            of 1 would let the context see half of its target's pixels).
            pl_bolts' CPCTask (Falcon & Cho's code) predicts the same steps.
        target_dim: channels of the targets and predictions: 64 as pl_bolts'
            CPCTask (Falcon & Cho 2020 App. B.4); None: dim.
        context_blocks, hidden, kernel_size: of the ContextNetwork.
        scale: multiplies the scores (pl_bolts' ``embed_scale`` 0.1, applied
            there to the predictions; 1: a plain dot product).
        directions: ("down", "up") as CPC v2 (§4.1: predictions from above
            and from below), each with its own context network and
            prediction heads, one shared target head; ("down",) as Falcon &
            Cho / pl_bolts.

    Shape:
        forward(grid): (B, D, H, W) from e.g. PatchEncoder -> scalar loss,
        the sum over directions of cpc_infonce.

    Example:
        >>> task = CPCTask(32, offsets=(2, 3), context_blocks=2)
        >>> loss = task(torch.randn(4, 32, 7, 7))
    """

    def __init__(
        self,
        dim: int,
        offsets: Sequence[int] = (2, 3, 4, 5, 6),
        target_dim: int | None = 64,
        context_blocks: int = 5,
        hidden: int | None = None,
        kernel_size: int = 3,
        scale: float = 0.1,
        directions: Sequence[str] = DIRECTIONS,
    ):
        super().__init__()
        target_dim = target_dim or dim
        self.offsets = tuple(offsets)
        if not self.offsets or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.offsets):
            raise ValueError(f"offsets must name at least one step, ints >= 1, e.g. (2, 3, 4), got {offsets!r}")
        self.directions = tuple(directions)
        distinct = len(set(self.directions)) == len(self.directions)
        if not self.directions or not distinct or not set(self.directions) <= set(DIRECTIONS):
            raise ValueError(f"directions must be distinct values of {DIRECTIONS}, got {directions!r}")
        self.scale = scale
        self.target_head = nn.Conv2d(dim, target_dim, 1)
        self.contexts = nn.ModuleDict(
            {d: ContextNetwork(dim, hidden, context_blocks, kernel_size) for d in self.directions}
        )
        self.heads = nn.ModuleDict(
            {d: nn.ModuleList(nn.Conv2d(dim, target_dim, 1) for _ in self.offsets) for d in self.directions}
        )

    def forward(self, grid: torch.Tensor, *, gather: bool = False) -> torch.Tensor:
        if grid.dim() != 4:
            raise ValueError(f"grid must be (B, D, H, W), got shape {tuple(grid.shape)}")
        height = grid.shape[2]
        if max(self.offsets) >= height:
            raise ValueError(
                f"offsets {self.offsets} need a grid taller than {max(self.offsets)} rows, got H = {height}"
            )
        targets = self.target_head(grid)
        loss = 0.0
        for direction in self.directions:
            # "up" is "down" on the grid flipped upside down: row 0 is then the bottom row
            g, t = (grid, targets) if direction == "down" else (grid.flip(2), targets.flip(2))
            context = self.contexts[direction](g)
            # Context rows 0 .. H-1-k predict the targets k rows further on.
            preds = [head(context[:, :, : height - k]) for head, k in zip(self.heads[direction], self.offsets)]
            loss = loss + cpc_infonce(preds, t, self.offsets, self.scale, gather=gather)
        return loss
