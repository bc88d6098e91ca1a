"""CPC v2's patch encoder: a ResNet with layer normalisation, applied to
every patch of a grid and mean-pooled into a (B, D, nH, nW) grid.

- [0]: CPC v2, Hénaff et al. 2020, §4.1 and Appendix A.2 (ResNet-161 with
  layer normalisation instead of batch normalisation, patches encoded
  independently and mean-pooled), https://arxiv.org/abs/1905.09272. Its
  ResNet-161 is ResNet-101 with the third residual stack widened: 46
  blocks instead of 23, 512-channel bottlenecks instead of 256, 4096-channel
  feature maps instead of 1024 (`CPC_RESNET_PRESETS["resnet161"]`).

Batch normalisation would leak information between the patches of one
image (their statistics are shared), which a contrastive task between
patches can exploit; layer normalisation keeps each patch separate.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn

from csl_ext.ops.patchify import patchify

__all__ = ["CPC_RESNET_PRESETS", "CPCResNet", "PatchEncoder", "cpc_resnet", "layer_norm2d"]

# Named layouts: blocks per stage, bottleneck width per stage, output channels per stage.
CPC_RESNET_PRESETS = {
    # [0]'s ResNet-161 up to its widened third stack (4096-d feature maps, the representation [0] evaluates)
    "resnet161": {"blocks": (3, 4, 46), "widths": (64, 128, 512), "channels": (256, 512, 4096)},
    # ResNet-101's first three stacks (23 blocks, 256 -> 1024), for comparison
    "resnet101": {"blocks": (3, 4, 23), "widths": (64, 128, 256), "channels": (256, 512, 1024)},
}


def layer_norm2d(channels: int) -> nn.Module:
    """LayerNorm over (C, H, W) of each sample with a per-channel affine:
    GroupNorm with one group. A drop-in `norm_layer` for torchvision ResNets."""
    return nn.GroupNorm(1, channels)


class _Bottleneck(nn.Module):
    """Pre-activation bottleneck: norm-ReLU-1x1, norm-ReLU-3x3 (stride),
    norm-ReLU-1x1 (x4 channels), plus a projected shortcut when shapes change."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, c_out: int | None = None):
        super().__init__()
        c_out = c_out or width * self.expansion
        self.body = nn.Sequential(
            layer_norm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, width, 1, bias=False),
            layer_norm2d(width), nn.ReLU(), nn.Conv2d(width, width, 3, stride, 1, bias=False),
            layer_norm2d(width), nn.ReLU(), nn.Conv2d(width, c_out, 1, bias=False),
        )  # fmt: skip
        same_shape = stride == 1 and c_in == c_out
        self.shortcut = nn.Identity() if same_shape else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class CPCResNet(nn.Module):
    """A bottleneck ResNet with layer normalisation for single patches.

    Args:
        blocks: residual blocks per stage, e.g. (3, 4, 6, 3) (ResNet-50's
            layout); CPC v2's encoder is the preset ``cpc_resnet("resnet161")``.
        width: channels of the first stage's bottleneck, doubling per stage;
            D = 4 * width * 2^(stages - 1), e.g. 64 -> 2048 for four stages.
        in_channels: 3 for RGB.
        widths, channels: per-stage bottleneck widths and output channels,
            overriding `width` (e.g. ResNet-161's (64, 128, 512) and
            (256, 512, 4096)).

    The stem is one 3x3 conv at stride 1 (csl_ext's: patches are 8-64 px),
    not ResNet's 7x7 stride-2 conv and max pool.

    Shape:
        (N, C, p, p) patches -> (N, D) vectors (mean over the last map).

    Example:
        >>> CPCResNet((1, 1), width=8)(torch.randn(4, 3, 16, 16)).shape
        torch.Size([4, 64])
    """

    def __init__(
        self,
        blocks: Sequence[int] = (3, 4, 6, 3),
        width: int = 64,
        in_channels: int = 3,
        widths: Sequence[int] | None = None,
        channels: Sequence[int] | None = None,
    ):
        super().__init__()
        if not blocks or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in blocks):
            raise ValueError(f"blocks must be a non-empty sequence of ints >= 1, got {blocks!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an int >= 1, got {width!r}")
        widths = tuple(widths) if widths is not None else tuple(width * 2**s for s in range(len(blocks)))
        channels = tuple(channels) if channels is not None else tuple(w * _Bottleneck.expansion for w in widths)
        for name, values in (("widths", widths), ("channels", channels)):
            if len(values) != len(blocks) or any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be {len(blocks)} ints >= 1 (one per stage), got {values!r}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
        c_in = widths[0]
        for stage, count in enumerate(blocks):
            for i in range(count):
                layers.append(_Bottleneck(c_in, widths[stage], 2 if (i == 0 and stage > 0) else 1, channels[stage]))
                c_in = channels[stage]
        layers += [layer_norm2d(c_in), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.features(patches).mean(dim=(2, 3))


def cpc_resnet(preset: str = "resnet161", in_channels: int = 3) -> CPCResNet:
    """A CPCResNet of a named layout (CPC_RESNET_PRESETS), e.g. CPC v2's
    "resnet161" (about 300M parameters: for real runs, not tests)."""
    if preset not in CPC_RESNET_PRESETS:
        raise ValueError(f"preset must be one of {sorted(CPC_RESNET_PRESETS)}, got {preset!r}")
    return CPCResNet(in_channels=in_channels, **CPC_RESNET_PRESETS[preset])


def _as_vector_encoder(backbone: nn.Module) -> nn.Module:
    """A torchvision ResNet without its classifier (fc -> Identity): its own
    global average pool gives (N, D); other modules are used as they are
    and must return (N, D) or a (N, D, h, w) map, which is mean-pooled."""
    if hasattr(backbone, "fc") and isinstance(backbone.fc, nn.Linear):
        backbone.fc = nn.Identity()
    return backbone


class PatchEncoder(nn.Module):
    """CPC's patch path: image -> patch grid -> per-patch encoder -> (B, D, nH, nW).

    Args:
        encoder: maps (N, C, p, p) patches to (N, D) vectors or (N, D, h, w)
            maps (mean-pooled): a CPCResNet, or a torchvision ResNet (its fc
            is replaced by an identity; build it with
            ``norm_layer=layer_norm2d`` to follow CPC v2).
        patch_size, stride: of the grid, e.g. 64 / 32 on 256 px (7x7), 16 / 8
            on 64 px, 8 / 4 on 32 px.
        patch_transform: optional per-patch augmentation hook applied to the
            (N, C, p, p) batch of all patches (N = B * nH * nW) before the
            encoder, e.g. CPC v2's per-patch colour dropping; identity if None.

    Shape:
        (B, C, H, W) images -> (B, D, nH, nW) grid.
    """

    def __init__(
        self,
        encoder: nn.Module,
        patch_size: int,
        stride: int,
        patch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        self.encoder = _as_vector_encoder(encoder)
        self.patch_size = patch_size
        self.stride = stride
        self.patch_transform = patch_transform

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = patchify(images, self.patch_size, self.stride)  # B x nH x nW x C x p x p
        b, n_h, n_w = patches.shape[:3]
        flat = patches.flatten(0, 2)  # B*nH*nW x C x p x p, a view
        if self.patch_transform is not None:
            flat = self.patch_transform(flat)
        features = self.encoder(flat)
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        if features.dim() != 2 or features.shape[0] != flat.shape[0]:
            raise ValueError(
                f"encoder must return (N, D) or (N, D, h, w) for N = {flat.shape[0]} patches, "
                f"got {tuple(features.shape)}"
            )
        return features.reshape(b, n_h, n_w, -1).permute(0, 3, 1, 2)  # B x D x nH x nW
