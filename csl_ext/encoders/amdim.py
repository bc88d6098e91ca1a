"""AMDIM's encoder: a wide ResNet without padding that returns several maps.

- [0]: AMDIM, Bachman, Hjelm & Buchwalter 2019, §3.5 and Appendix (the
  encoder), https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, §3.2 (its role as YADIM's encoder),
  https://arxiv.org/abs/2009.00104

No padding anywhere after the stem: every 3x3 block shrinks its map by two,
so the receptive fields of the 7x7, 5x5 and 1x1 maps are nested patches of
the image and comparing maps across scales is a local-to-global task.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AMDIMEncoder", "amdim_encoder", "AMDIM_PRESETS", "AMDIMConfig"]


@dataclass(frozen=True)
class AMDIMConfig:
    """ndf: base width; n_rkhs: the embedding size D of every returned map;
    depth: residual blocks per stage; image_size: 32, 64 or 128."""

    ndf: int
    n_rkhs: int
    depth: int
    image_size: int


# Published settings, as in the AMDIM repository's README commands; CIFAR-10
# with D = 1024, the shape AMDIM reports (and the benchmarks use).
AMDIM_PRESETS = {
    "cifar10": AMDIMConfig(ndf=128, n_rkhs=1024, depth=10, image_size=32),
    "stl10": AMDIMConfig(ndf=192, n_rkhs=1536, depth=8, image_size=64),
    "imagenet": AMDIMConfig(ndf=320, n_rkhs=2560, depth=10, image_size=128),
}


def _norm(channels: int, use_bn: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if use_bn else nn.Identity()


class _ResidualNxN(nn.Module):
    """An NxN conv (stride s, no padding) then a 1x1 conv, plus a shortcut of
    the same geometry: an average pool (channels zero-padded when the block
    widens) or, when it narrows, a strided conv. No ReLU on the output: the
    next block starts with one."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, use_bn: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, stride, bias=False)
        self.norm1 = _norm(c_out, use_bn)
        self.conv2 = nn.Conv2d(c_out, c_out, 1, bias=not use_bn)
        self.norm2 = _norm(c_out, use_bn)
        self.grow = c_out - c_in
        self.shortcut = nn.Conv2d(c_in, c_out, kernel, stride, bias=False) if self.grow < 0 else nn.AvgPool2d(kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        skip = self.shortcut(x)
        if self.grow > 0:  # zero channels for the extra outputs, e.g. 128 -> 256
            skip = F.pad(skip, (0, 0, 0, 0, 0, self.grow))
        return h + skip


class _Stage(nn.Sequential):
    """One NxN block (the resolution change) then depth - 1 1x1 blocks."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, depth: int, use_bn: bool):
        blocks = [_ResidualNxN(c_in, c_out, kernel, stride, use_bn)]
        blocks += [_ResidualNxN(c_out, c_out, 1, 1, use_bn) for _ in range(depth - 1)]
        super().__init__(*[m for b in blocks for m in (nn.ReLU(), b)][1:])  # ReLU between blocks


class _RKHSHead(nn.Module):
    """Per-location embedding into the n_rkhs space: two 1x1 convs plus a
    linear 1x1 shortcut (AMDIM's 'fake RKHS' network)."""

    def __init__(self, c_in: int, n_rkhs: int, use_bn: bool):
        super().__init__()
        self.hidden = nn.Conv2d(c_in, n_rkhs, 1, bias=False)
        self.norm = _norm(n_rkhs, use_bn)
        self.out = nn.Conv2d(n_rkhs, n_rkhs, 1)
        self.shortcut = nn.Conv2d(c_in, n_rkhs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.norm(self.hidden(x)))) + self.shortcut(x)


class AMDIMEncoder(nn.Module):
    """AMDIM's encoder, returning embeddings of the 7x7, 5x5 and 1x1 maps.

    Stem (for 128 px, a 5x5 stride-2 conv with reflect padding to 64 px, then)
    a 3x3 conv, stages that shrink to 7x7, a normalisation-free stretch of
    two 3x3 stages (7 -> 5 -> 3), and a final 3x3 block to 1x1 with n_rkhs
    channels. The 7x7 and 5x5 maps go through 1x1 RKHS heads so every map has
    D = n_rkhs channels and maps at any two levels can be compared.

    Args:
        ndf: base width, e.g. 128 (CIFAR-10).
        n_rkhs: D, the channels of every returned map, e.g. 1024.
        depth: residual blocks per stage, e.g. 10.
        image_size: 32, 64 or 128.
        in_channels: 3 for RGB.
        use_bn: BatchNorm in the blocks (AMDIM: off).

    Shape:
        (B, in_channels, S, S) -> [(B, D, 7, 7), (B, D, 5, 5), (B, D, 1, 1)],
        ordered so that index -1 is the last (1x1) map, -2 the 5x5, -3 the
        7x7: AMDIM's (j:k) notation indexes this list.

    Example:
        >>> enc = AMDIMEncoder(ndf=16, n_rkhs=32, depth=1, image_size=32)
        >>> [m.shape[-1] for m in enc(torch.randn(2, 3, 32, 32))]
        [7, 5, 1]
    """

    def __init__(self, ndf: int = 128, n_rkhs: int = 1024, depth: int = 3, image_size: int = 32, in_channels: int = 3, use_bn: bool = False):
        super().__init__()
        for name, value in (("ndf", ndf), ("n_rkhs", n_rkhs), ("depth", depth), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if image_size not in (32, 64, 128):
            raise ValueError(f"image_size must be 32, 64 or 128, got {image_size!r}")
        self.image_size = image_size
        self.n_rkhs = n_rkhs
        wide = 4 if image_size == 32 else 8  # channels of the 7x7 map: ndf * wide
        stem: list[nn.Module] = []
        if image_size == 128:  # 128 -> 64
            stem += [nn.ReflectionPad2d(2), nn.Conv2d(in_channels, ndf, 5, 2), nn.ReLU()]
            in_channels = ndf
        stem += [nn.Conv2d(in_channels, ndf, 3), nn.ReLU()]  # S -> S - 2: 30 or 62
        if image_size == 32:  # 30 -> 14 -> 7
            stem += [_ResidualNxN(ndf, ndf, 1, 1, use_bn), nn.ReLU()]
            down = [_Stage(ndf, 2 * ndf, 4, 2, depth, use_bn), nn.ReLU(), _Stage(2 * ndf, 4 * ndf, 2, 2, depth, use_bn)]
        else:  # 62 -> 30 -> 14 -> 7
            down = [
                _Stage(ndf, 2 * ndf, 4, 2, depth, use_bn),
                nn.ReLU(),
                _Stage(2 * ndf, 4 * ndf, 4, 2, depth, use_bn),
                nn.ReLU(),
                _Stage(4 * ndf, 8 * ndf, 2, 2, depth, use_bn),
            ]
        c7 = wide * ndf
        self.to_7x7 = nn.Sequential(*stem, *down, _norm(c7, use_bn))
        self.to_5x5 = nn.Sequential(nn.ReLU(), _Stage(c7, c7, 3, 1, depth, use_bn))
        self.to_1x1 = nn.Sequential(
            nn.ReLU(), _Stage(c7, c7, 3, 1, depth, use_bn), nn.ReLU(), _ResidualNxN(c7, n_rkhs, 3, 1, use_bn)
        )
        self.head_7x7 = _RKHSHead(c7, n_rkhs, use_bn)
        self.head_5x5 = _RKHSHead(c7, n_rkhs, use_bn)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.dim() != 4 or images.shape[-2:] != (self.image_size, self.image_size):
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
    kwargs = dict(ndf=config.ndf, n_rkhs=config.n_rkhs, depth=config.depth, image_size=config.image_size)
    kwargs.update(overrides)
    return AMDIMEncoder(**kwargs)
