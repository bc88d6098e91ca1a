"""AMDIM's encoder: a wide ResNet without padding that returns several maps.

- [0]: AMDIM, Bachman, Hjelm & Buchwalter 2019, §3.5 and Appendix (the
  encoder), https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, §3.2 (its role as YADIM's encoder),
  https://arxiv.org/abs/2009.00104
- [2]: amdim-public (the AMDIM authors' code), model.py: Encoder,
  ConvResNxN, ConvResBlock, FakeRKHSConvNet, MaybeBatchNorm2d;
  https://github.com/Philip-Bachman/amdim-public (pl_bolts'
  amdim/networks.py is the same network)

No padding anywhere after the stem: every 3x3 block shrinks its map by two,
so the receptive fields of the 7x7, 5x5 and 1x1 maps are nested patches of
the image and comparing maps across scales is a local-to-global task.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AMDIM_PRESETS", "AMDIMConfig", "AMDIMEncoder", "amdim_encoder"]


@dataclass(frozen=True)
class AMDIMConfig:
    """ndf: base width; n_rkhs: the embedding size D of every returned map;
    depth: residual blocks per stage; image_size: 32, 64 or 128."""

    ndf: int
    n_rkhs: int
    depth: int
    image_size: int


# Widths with a source in [2]: "cifar10" has train.py's default ndf / n_rkhs
# (its default n_depth is 3; 10 here); "stl10" is the README's training
# command (ndf 192, n_rkhs 1536, n_depth 8, given there for 128 px ImageNet);
# "imagenet" is the released AMDIM-Large checkpoint (ndf 320, rkhs 2560, rd 10).
AMDIM_PRESETS = {
    "cifar10": AMDIMConfig(ndf=128, n_rkhs=1024, depth=10, image_size=32),
    "stl10": AMDIMConfig(ndf=192, n_rkhs=1536, depth=8, image_size=64),
    "imagenet": AMDIMConfig(ndf=320, n_rkhs=2560, depth=10, image_size=128),
}


def _maybe_bn(channels: int, use_bn: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if use_bn else nn.Identity()


class _ResidualNxN(nn.Module):
    """``h = conv1x1(ReLU(bn?(convNxN(x)))) + shortcut(x)``, no ReLU on the
    sum: the residual stream stays linear, only the branch has a ReLU [2].

    The shortcut has the block's geometry: an average pool, its channels
    zero-padded when the block widens (e.g. 128 -> 256). A narrowing block
    (c_out < c_in) gets a strided conv shortcut: the reference has none (it
    asserts c_out >= c_in); csl_ext allows it for small n_rkhs.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, use_bn: bool):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, stride, bias=False)
        self.norm1 = _maybe_bn(c_out, use_bn)
        self.conv2 = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.grow = c_out - c_in
        self.narrow = nn.Conv2d(c_in, c_out, kernel, stride, bias=False) if self.grow < 0 else None

    def reset_parameters(self, init_scale: float = 1.0) -> None:
        """Fixup-style [2]: conv1 at PyTorch's default init times
        `init_scale`, conv2 zero, so every block starts as its shortcut."""
        nn.init.kaiming_uniform_(self.conv1.weight, a=math.sqrt(5))
        self.conv1.weight.data.mul_(init_scale)
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.norm1(self.conv1(x))))
        if self.narrow is not None:
            return h + self.narrow(x)
        skip = F.avg_pool2d(x, self.kernel, self.stride)
        if self.grow > 0:  # zero channels for the extra outputs, e.g. 128 -> 256
            skip = F.pad(skip, (0, 0, 0, 0, 0, self.grow))
        return h + skip


class _Stage(nn.Sequential):
    """One NxN block (the resolution change) then depth - 1 1x1 blocks,
    chained without ReLU between them (as [2]'s ConvResBlock)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, depth: int, use_bn: bool):
        blocks = [_ResidualNxN(c_in, c_out, kernel, stride, use_bn)]
        blocks += [_ResidualNxN(c_out, c_out, 1, 1, use_bn) for _ in range(depth - 1)]
        super().__init__(*blocks)


class _StemConv(nn.Sequential):
    """conv (with bias) then ReLU, optional reflect padding: [2]'s Conv3x3,
    which the encoder always builds without BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, reflect_pad: int = 0):
        pad = [nn.ReflectionPad2d(reflect_pad)] if reflect_pad else []
        super().__init__(*pad, nn.Conv2d(c_in, c_out, kernel, stride), nn.ReLU())


class _RKHSHead(nn.Module):
    """Per-location embedding into the n_rkhs space ([2]'s FakeRKHSConvNet):
    ``BN(conv1x1(ReLU(bn?(conv1x1(x)))) + shortcut(x))``. The output BN is
    always on; the shortcut (1x1 conv with bias) starts near the identity
    (uniform(-0.01, 0.01) plus ones on the diagonal) when it does not
    narrow, and the second conv starts at zero."""

    def __init__(self, c_in: int, n_rkhs: int, use_bn: bool):
        super().__init__()
        self.hidden = nn.Conv2d(c_in, n_rkhs, 1, bias=False)
        self.norm = _maybe_bn(n_rkhs, use_bn)
        self.out = nn.Conv2d(n_rkhs, n_rkhs, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, n_rkhs, 1)
        self.out_norm = nn.BatchNorm2d(n_rkhs)

    @torch.no_grad()
    def reset_parameters(self, init_scale: float = 1.0) -> None:
        nn.init.kaiming_uniform_(self.hidden.weight, a=math.sqrt(5))
        self.hidden.weight.mul_(init_scale)
        nn.init.zeros_(self.out.weight)
        c_out, c_in = self.shortcut.weight.shape[:2]
        if c_out >= c_in:  # near identity: the head starts as BN of its input
            self.shortcut.weight.uniform_(-0.01, 0.01)
            self.shortcut.weight[:, :, 0, 0].diagonal().fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_norm(self.out(F.relu(self.norm(self.hidden(x)))) + self.shortcut(x))


class AMDIMEncoder(nn.Module):
    """AMDIM's encoder, returning embeddings of the 7x7, 5x5 and 1x1 maps.

    The network of the reference code [2] (model.py's Encoder): a stem conv
    + ReLU (for 128 px first a 5x5 stride-2 conv with reflect padding to
    64 px), residual stages down to 7x7 (an optional BatchNorm there), two
    3x3 stages (7 -> 5 -> 3) and a 3x3 block to 1x1 with n_rkhs channels,
    then BatchNorm. The 7x7 and 5x5 maps go through RKHS heads (BatchNorm on
    their outputs too) so that every map has D = n_rkhs channels. Residual
    blocks have no ReLU on their sum; their second conv starts at zero and
    the heads' shortcuts near the identity (`reset_parameters`, called at
    construction as the reference's ``init_weights(init_scale=1.0)``), so
    the initial embeddings are batch-normalised average pools of the stem's
    features and the initial NCE scores are O(1), not O(1e-3).

    Args:
        ndf: base width, e.g. 128 (CIFAR-10).
        n_rkhs: D, the channels of every returned map, e.g. 1024.
        depth: residual blocks per stage, e.g. 10.
        image_size: 32, 64 or 128.
        in_channels: 3 for RGB.
        use_bn: BatchNorm inside the blocks and on the 7x7 map (AMDIM's
            ``--use_bn``, off by default); the BatchNorm on the returned
            embeddings is always on, as in [2].
        init_scale: multiplies the first conv of every residual branch at
            initialisation ([2]: 1.0).

    Shape:
        (B, in_channels, S, S) -> [(B, D, 7, 7), (B, D, 5, 5), (B, D, 1, 1)],
        ordered so that index -1 is the last (1x1) map, -2 the 5x5, -3 the
        7x7: AMDIM's (j:k) notation indexes this list.

    Example:
        >>> enc = AMDIMEncoder(ndf=16, n_rkhs=64, depth=1, image_size=32)
        >>> [m.shape[-1] for m in enc(torch.randn(2, 3, 32, 32))]
        [7, 5, 1]
    """

    def __init__(
        self,
        ndf: int = 128,
        n_rkhs: int = 1024,
        depth: int = 3,
        image_size: int = 32,
        in_channels: int = 3,
        use_bn: bool = False,
        init_scale: float = 1.0,
    ):
        super().__init__()
        for name, value in (("ndf", ndf), ("n_rkhs", n_rkhs), ("depth", depth), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if image_size not in (32, 64, 128):
            raise ValueError(f"image_size must be 32, 64 or 128, got {image_size!r}")
        self.image_size = image_size
        self.in_channels = in_channels
        self.n_rkhs = n_rkhs
        layers: list[nn.Module] = []
        if image_size == 128:  # 128 -> 64
            layers.append(_StemConv(in_channels, ndf, 5, 2, reflect_pad=2))
            in_channels = ndf
        layers.append(_StemConv(in_channels, ndf, 3))  # S -> S - 2: 30 or 62
        if image_size == 32:  # 30 -> 14 -> 7
            layers += [
                _ResidualNxN(ndf, ndf, 1, 1, use_bn),
                _Stage(ndf, 2 * ndf, 4, 2, depth, use_bn),
                _Stage(2 * ndf, 4 * ndf, 2, 2, depth, use_bn),
            ]
            c7 = 4 * ndf
        else:  # 62 -> 30 -> 14 -> 7
            layers += [
                _Stage(ndf, 2 * ndf, 4, 2, depth, use_bn),
                _Stage(2 * ndf, 4 * ndf, 4, 2, depth, use_bn),
                _Stage(4 * ndf, 8 * ndf, 2, 2, depth, use_bn),
            ]
            c7 = 8 * ndf
        self.to_7x7 = nn.Sequential(*layers, _maybe_bn(c7, use_bn))
        self.to_5x5 = _Stage(c7, c7, 3, 1, depth, use_bn)
        self.to_1x1 = nn.Sequential(
            _Stage(c7, c7, 3, 1, depth, use_bn), _ResidualNxN(c7, n_rkhs, 3, 1, use_bn), nn.BatchNorm2d(n_rkhs)
        )
        self.head_7x7 = _RKHSHead(c7, n_rkhs, use_bn)
        self.head_5x5 = _RKHSHead(c7, n_rkhs, use_bn)
        self.reset_parameters(init_scale)

    def reset_parameters(self, init_scale: float = 1.0) -> None:
        """The reference's fixup-style initialisation of every residual
        block and RKHS head (other layers keep PyTorch's defaults)."""
        for module in self.modules():
            if isinstance(module, (_ResidualNxN, _RKHSHead)):
                module.reset_parameters(init_scale)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.dim() != 4 or images.shape[-3:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"images must have shape (B, C, {self.image_size}, {self.image_size}), got {tuple(images.shape)}"
            )
        h7 = self.to_7x7(images)
        h5 = self.to_5x5(h7)
        h1 = self.to_1x1(h5)
        return [self.head_7x7(h7), self.head_5x5(h5), h1]


def amdim_encoder(preset: str = "cifar10", **overrides) -> AMDIMEncoder:
    """An AMDIMEncoder with a published preset ("cifar10", "stl10",
    "imagenet"); keyword arguments override its fields, e.g. depth=3."""
    if preset not in AMDIM_PRESETS:
        raise ValueError(f"preset must be one of {sorted(AMDIM_PRESETS)}, got {preset!r}")
    config = AMDIM_PRESETS[preset]
    kwargs = {"ndf": config.ndf, "n_rkhs": config.n_rkhs, "depth": config.depth, "image_size": config.image_size}
    kwargs.update(overrides)
    return AMDIMEncoder(**kwargs)
