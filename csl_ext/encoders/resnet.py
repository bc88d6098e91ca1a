"""torchvision ResNets, ResNeXts and Wide-ResNets as encoders (part 2 of the
framework), with a CIFAR stem, a width option for small, fast models, and the
multi-scale feature maps that AMDIM-style comparisons need.

The CIFAR stem (3x3 conv, stride 1, no max-pool) is what SimCLR uses for 32 px
images [0, Appendix B.9]; the ImageNet stem (7x7 conv, stride 2, max-pool) is
torchvision's. ``width=64`` gives torchvision's exact architecture; smaller
widths scale every stage (w, 2w, 4w, 8w) for CPU-sized runs. The nine
architectures of Falcon & Cho's encoder ablation [2, Table 1] are here, built
from torchvision's own BasicBlock / Bottleneck.

- [0]: SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709
- [1]: He et al. 2016, https://arxiv.org/abs/1512.03385; ResNeXt, Xie et al.
  2017, https://arxiv.org/abs/1611.05431; Wide-ResNet, Zagoruyko & Komodakis
  2016, https://arxiv.org/abs/1605.07146 (torchvision's "_2" variants)
- [2]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet as tv

from csl_ext.encoders.cpc_resnet import layer_norm2d


@dataclass(frozen=True)
class Arch:
    """block: torchvision's BasicBlock or Bottleneck; layers: blocks per stage;
    groups / width_per_group: torchvision's ResNeXt and Wide-ResNet knobs."""

    block: type
    layers: tuple[int, int, int, int]
    groups: int = 1
    width_per_group: int = 64


ARCHS = {
    "resnet10": Arch(tv.BasicBlock, (1, 1, 1, 1)),
    "resnet18": Arch(tv.BasicBlock, (2, 2, 2, 2)),
    "resnet34": Arch(tv.BasicBlock, (3, 4, 6, 3)),
    "resnet50": Arch(tv.Bottleneck, (3, 4, 6, 3)),
    "resnet101": Arch(tv.Bottleneck, (3, 4, 23, 3)),
    "resnet152": Arch(tv.Bottleneck, (3, 8, 36, 3)),
    "resnext50_32x4d": Arch(tv.Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": Arch(tv.Bottleneck, (3, 4, 23, 3), groups=32, width_per_group=8),
    "wide_resnet50_2": Arch(tv.Bottleneck, (3, 4, 6, 3), width_per_group=128),
    "wide_resnet101_2": Arch(tv.Bottleneck, (3, 4, 23, 3), width_per_group=128),
}

NORMS = {"batch": nn.BatchNorm2d, "layer": layer_norm2d}


def _grouping(arch: Arch, width: int) -> tuple[int, float]:
    """(groups, torchvision base_width) that keep the architecture's shape at
    `width` first-stage channels: at width 64 torchvision's own values; below,
    the cardinality shrinks with the width (32 groups of 4 at 64 -> 4 groups
    of 4 at 8) so that every group keeps at least one channel.

    torchvision's Bottleneck has ``int(planes * base_width / 64) * groups``
    inner channels; base_width is solved for here (a float, nudged up so the
    int() does not round 3.9999 down)."""
    inner = width * arch.width_per_group * arch.groups // 64  # first stage's inner channels at this width
    inner = max(1, inner)
    groups = max(1, min(arch.groups, round(arch.groups * width / 64)))
    while inner % groups:  # e.g. inner 12 and 8 groups -> 6 groups
        groups -= 1
    per_group = inner // groups
    return groups, per_group * 64 / width + 1e-6


class ResNetEncoder(tv.ResNet):
    """A torchvision ResNet without its classifier: images -> pooled features,
    and on request the maps of its last three stages.

    Args:
        arch: a key of ARCHS: ``resnet10, resnet18, resnet34, resnet50,
            resnet101, resnet152, resnext50_32x4d, resnext101_32x8d,
            wide_resnet50_2, wide_resnet101_2``.
        cifar_stem: 3x3 stride-1 first conv and no max-pool (for 32-64 px
            images); False: torchvision's 7x7 stride-2 conv and max-pool.
        width: channels of the first stage (64 in torchvision); stages use
            width, 2 width, 4 width, 8 width (times the block's expansion).
        norm: ``"batch"`` (torchvision's) or ``"layer"`` (LayerNorm over
            (C, H, W) per sample, as CPC v2 needs for patches).
        embed_dim: None: `forward(x, return_maps=True)` returns the stages'
            maps as they are (their channels differ); D: each map goes
            through its own 1x1 conv to D channels, so that maps of any two
            levels can be compared with a dot product, as AMDIM's encoder
            embeds its maps into n_rkhs channels.
        zero_init_residual: start the scale of each residual block's last
            norm layer at 0, so every block begins as its shortcut: torchvision's
            own ``zero_init_residual`` (its comment cites Goyal et al. 2017,
            https://arxiv.org/abs/1706.02677), as the SimCLR authors' code does
            for every block (google-research/simclr ``resnet.py``,
            ``init_zero=True``) and BYOL's for bottleneck blocks (haiku
            ``BlockV1``, deepmind-research ``byol/utils/networks.py``). False
            (torchvision's default, and MoCo's code): scale 1.

    Shapes:
        forward(x): (N, 3, H, W) -> (N, feature_dim), feature_dim = 8 * width
        * expansion (512 for ResNet-18, 2048 for ResNet-50 at width 64).
        forward(x, return_maps=True): (features, [m2, m3, m4]) with m_k of
        stage k (layer2..layer4): (N, C_k, H/s_k, W/s_k), s = 2, 4, 8 with the
        CIFAR stem and 8, 16, 32 with the ImageNet stem; C_k = embed_dim, or
        2, 4, 8 x width x expansion without embedding.

    Example:
        >>> enc = ResNetEncoder("resnet18", cifar_stem=True, width=16)
        >>> enc(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """

    def __init__(
        self,
        arch: str = "resnet18",
        cifar_stem: bool = True,
        width: int = 64,
        norm: str = "batch",
        embed_dim: int | None = None,
        zero_init_residual: bool = False,
    ):
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
        if embed_dim is not None and (isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1):
            raise ValueError(f"embed_dim must be None or an integer >= 1, got {embed_dim!r}")
        if not isinstance(zero_init_residual, bool):
            raise ValueError(f"zero_init_residual must be True or False, got {zero_init_residual!r}")
        spec = ARCHS[arch]
        block = spec.block
        # torchvision's constructor fixes 64 first-stage channels, so the
        # stages are rebuilt here with its own _make_layer and blocks.
        nn.Module.__init__(self)
        norm_layer = NORMS[norm]
        self._norm_layer = norm_layer
        self.dilation = 1
        self.groups, self.base_width = _grouping(spec, width) if block is tv.Bottleneck else (1, 64)
        self.inplanes = width
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, spec.layers[0])
        self.layer2 = self._make_layer(block, 2 * width, spec.layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, spec.layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, spec.layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Identity()
        self.feature_dim = 8 * width * block.expansion
        self.map_channels = [c * width * block.expansion for c in (2, 4, 8)]
        self.embed_dim = embed_dim
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                last_norm = m.bn3 if isinstance(m, tv.Bottleneck) else m.bn2 if isinstance(m, tv.BasicBlock) else None
                if last_norm is not None:
                    nn.init.zeros_(last_norm.weight)
        # created after the init loop: torchvision's default conv init for the embeddings
        self.embeddings = (
            None
            if embed_dim is None
            else nn.ModuleList(nn.Conv2d(c, embed_dim, kernel_size=1) for c in self.map_channels)
        )
        self.arch, self.cifar_stem, self.width, self.norm = arch, cifar_stem, width, norm
        self.zero_init_residual = zero_init_residual

    def forward(self, x: torch.Tensor, return_maps: bool = False):
        """x: (N, 3, H, W) -> (N, feature_dim), or (features, maps) with
        `return_maps` (see the class docstring for the maps' shapes)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (N, 3, H, W), got {tuple(x.shape)}")
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        m2 = self.layer2(x)
        m3 = self.layer3(m2)
        m4 = self.layer4(m3)
        features = torch.flatten(self.avgpool(m4), 1)
        if not return_maps:
            return features
        maps = [m2, m3, m4]
        if self.embeddings is not None:
            maps = [embed(m) for embed, m in zip(self.embeddings, maps)]
        return features, maps
