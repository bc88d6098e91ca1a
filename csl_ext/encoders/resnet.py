"""torchvision ResNets as encoders (part 2 of the framework), with a CIFAR stem
and a width option for small, fast models.

The CIFAR stem (3x3 conv, stride 1, no max-pool) is what SimCLR uses for 32 px
images [0, Appendix B.9]; the ImageNet stem (7x7 conv, stride 2, max-pool) is
torchvision's. ``width=64`` gives torchvision's exact architecture; smaller
widths scale every stage (w, 2w, 4w, 8w) for CPU-sized runs.

- [0]: SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709
- [1]: He et al. 2016, https://arxiv.org/abs/1512.03385
"""
import torch
from torch import nn
from torchvision.models import resnet as tv

ARCHS = {
    "resnet10": (tv.BasicBlock, [1, 1, 1, 1]),
    "resnet18": (tv.BasicBlock, [2, 2, 2, 2]),
    "resnet34": (tv.BasicBlock, [3, 4, 6, 3]),
    "resnet50": (tv.Bottleneck, [3, 4, 6, 3]),
}


class ResNetEncoder(tv.ResNet):
    """A torchvision ResNet without its classifier: images -> pooled features.

    Args:
        arch: one of ``resnet10, resnet18, resnet34, resnet50``.
        cifar_stem: 3x3 stride-1 first conv and no max-pool (for 32-64 px images).
        width: channels of the first stage (64 in torchvision); stages use
            width, 2 width, 4 width, 8 width.

    Shapes:
        forward: (N, 3, H, W) -> (N, feature_dim), feature_dim = 8 * width *
        expansion (512 for ResNet-18, 2048 for ResNet-50 at width 64).

    Example:
        >>> enc = ResNetEncoder("resnet18", cifar_stem=True, width=16)
        >>> enc(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """

    def __init__(self, arch: str = "resnet18", cifar_stem: bool = True, width: int = 64):
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        block, layers = ARCHS[arch]
        # Build torchvision's ResNet-18 skeleton cheaply at width 1 is not
        # possible, so rebuild the stages here with torchvision's own blocks.
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # Bottleneck's width_per_group, kept as torchvision
        self.inplanes = width
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Identity()
        self.feature_dim = 8 * width * block.expansion
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.arch, self.cifar_stem, self.width = arch, cifar_stem, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) -> (N, feature_dim)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (N, 3, H, W), got {tuple(x.shape)}")
        return torch.flatten(self._forward_impl_features(x), 1)

    def _forward_impl_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)
