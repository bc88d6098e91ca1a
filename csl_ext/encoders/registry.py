"""The encoder registry: any encoder of the framework by name, at any width.

``ENCODERS[name](**kwargs)`` builds an encoder module with one interface:

- ``encoder(x)``: (N, 3, H, W) images -> (N, F) pooled features
  (``encoder.feature_dim`` = F);
- ``encoder(x, return_maps=True)``: ``(features, maps)``, the maps of its last
  three stages, ordered so that index -1 is the last (AMDIM's (j:k) notation
  indexes this list). With ``embed_dim=D`` every map has D channels (a 1x1
  conv per map, as AMDIM's encoder embeds its maps into n_rkhs channels); the
  AMDIM encoder's maps always do.

Every entry takes ``width`` (a multiplier of the published width, e.g. 0.125
for CPU-sized runs) and ``stem`` (``"cifar"``: 3x3 stride 1; ``"imagenet"``:
7x7 stride 2 + max-pool). Entries:

===================== ==========================================================
resnet10 ... 152,     torchvision's ResNet / ResNeXt / Wide-ResNet built from its
resnext50_32x4d,      own BasicBlock / Bottleneck (no weights): the nine encoders
resnext101_32x8d,     of Falcon & Cho's Table 1 plus ResNet-10. width 1 = 64
wide_resnet50_2,      first-stage channels. ``norm="layer"`` swaps BatchNorm for
wide_resnet101_2      LayerNorm. Maps: layer2, layer3, layer4.
amdim                 AMDIM's encoder (csl_ext.encoders.AMDIMEncoder); width 1 =
                      the published preset of ``image_size`` (ndf, n_rkhs scaled).
                      Its stem follows the image size (3x3 conv at 32 / 64 px; a
                      5x5 stride-2 conv first at 128 px = ``stem="imagenet"``).
                      Maps: the 7x7, 5x5 and 1x1 embeddings (D = n_rkhs).
cpc_resnet            CPC v2's patch ResNet (CPCResNet, LayerNorm instead of
                      BatchNorm) run on every patch of the 7x7 grid of patches
                      (side S/4, stride S/8) and mean-pooled per patch. Features:
                      the grid's mean. Maps: the last three stages' per-patch
                      means, as (N, C, 7, 7) grids. The patches are small, so it
                      has no down-sampling stem; ``stem="imagenet"`` is refused.
===================== ==========================================================

- [0]: Falcon & Cho 2020, §4.2 and Table 1, https://arxiv.org/abs/2009.00104

Example:
    >>> enc = ENCODERS["wide_resnet50_2"](width=0.125)
    >>> feats, maps = enc(torch.randn(2, 3, 32, 32), return_maps=True)
    >>> feats.shape, [tuple(m.shape[1:]) for m in maps]
    (torch.Size([2, 256]), [(64, 16, 16), (128, 8, 8), (256, 4, 4)])
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from csl_ext.encoders.amdim import AMDIM_PRESETS, AMDIMEncoder
from csl_ext.encoders.cpc_resnet import CPCResNet, PatchEncoder
from csl_ext.encoders.resnet import ARCHS, ResNetEncoder

__all__ = [
    "ENCODERS",
    "STEMS",
    "AMDIMFeatures",
    "MultiScaleMaps",
    "PatchGridEncoder",
    "build_encoder",
    "build_map_encoder",
    "build_patch_encoder",
]

STEMS = ("cifar", "imagenet")


def _check_width(width) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a number > 0 (a multiplier, e.g. 0.125), got {width!r}")
    return float(width)


def _check_stem(stem) -> None:
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")


def _scaled(value: int, width: float) -> int:
    return max(1, round(value * width))


def torchvision_encoder(
    arch: str,
    width: float = 1.0,
    stem: str = "cifar",
    norm: str = "batch",
    embed_dim: int | None = None,
    base_width: int | None = None,
    zero_init_residual: bool = False,
) -> ResNetEncoder:
    """A torchvision-architecture ResNetEncoder.

    Args:
        arch: a key of csl_ext.encoders.resnet.ARCHS.
        width: multiplier of torchvision's 64 first-stage channels.
        stem: "cifar" or "imagenet".
        norm: "batch" or "layer".
        embed_dim: D of the maps' 1x1 embeddings (None: no embedding).
        base_width: first-stage channels, overriding `width` (the methods'
            legacy ``width=64`` argument).
        zero_init_residual: each block's last norm scale starts at 0
            (ResNetEncoder says whose code does this).
    """
    _check_stem(stem)
    channels = base_width if base_width is not None else _scaled(64, _check_width(width))
    return ResNetEncoder(
        arch,
        cifar_stem=stem == "cifar",
        width=channels,
        norm=norm,
        embed_dim=embed_dim,
        zero_init_residual=zero_init_residual,
    )


class AMDIMFeatures(nn.Module):
    """AMDIM's encoder behind the registry's interface: features = the last
    (1x1) map flattened, (N, n_rkhs); maps = [(N, D, 7, 7), (N, D, 5, 5),
    (N, D, 1, 1)]. ``maps_encoder`` is the AMDIMEncoder itself."""

    def __init__(self, encoder: AMDIMEncoder):
        super().__init__()
        self.maps_encoder = encoder
        self.feature_dim = encoder.n_rkhs
        self.embed_dim = encoder.n_rkhs

    def forward(self, x: torch.Tensor, return_maps: bool = False):
        maps = self.maps_encoder(x)
        features = maps[-1].flatten(1)  # N x n_rkhs
        return (features, maps) if return_maps else features


def amdim(
    width: float = 1.0,
    stem: str | None = None,
    image_size: int = 32,
    ndf: int | None = None,
    n_rkhs: int | None = None,
    depth: int | None = None,
    embed_dim: int | None = None,
    **encoder_kwargs,
) -> AMDIMFeatures:
    """AMDIM's encoder at `width` x the published preset of `image_size`.

    Args:
        width: multiplies the preset's ndf and n_rkhs (e.g. 0.125 at 32 px:
            ndf 16, n_rkhs 128).
        stem: None (follow image_size), "cifar" (32 / 64 px) or "imagenet"
            (128 px: AMDIM's 5x5 stride-2 stem); a stem that contradicts
            image_size is an error.
        image_size: 32, 64 or 128.
        ndf, n_rkhs, depth: explicit values, overriding the scaled preset.
        embed_dim: an alias of n_rkhs (D of every map).
        **encoder_kwargs: passed to AMDIMEncoder (e.g. use_bn).
    """
    width = _check_width(width)
    presets = {p.image_size: p for p in AMDIM_PRESETS.values()}
    if image_size not in presets:
        raise ValueError(f"image_size must be one of {sorted(presets)} for the amdim encoder, got {image_size!r}")
    if stem is not None:
        _check_stem(stem)
        if (stem == "imagenet") != (image_size == 128):
            raise ValueError(
                f"stem={stem!r} does not fit image_size={image_size} for the amdim encoder: its "
                "strided 'imagenet' stem is the one for 128 px, the 'cifar' one for 32 / 64 px"
            )
    if embed_dim is not None and n_rkhs is not None and embed_dim != n_rkhs:
        raise ValueError(f"embed_dim ({embed_dim}) and n_rkhs ({n_rkhs}) name the same size; give one")
    preset = presets[image_size]
    encoder = AMDIMEncoder(
        ndf=ndf or _scaled(preset.ndf, width),
        n_rkhs=n_rkhs or embed_dim or _scaled(preset.n_rkhs, width),
        depth=depth or preset.depth,
        image_size=image_size,
        **encoder_kwargs,
    )
    return AMDIMFeatures(encoder)


def _cpc_stage_ends(backbone: CPCResNet) -> list[int]:
    """Indices in backbone.features after which each stage ends (the last
    stage ends after the final norm + ReLU)."""
    blocks = backbone.blocks
    ends, total = [], 0
    for count in blocks:
        total += count
        ends.append(total)  # features[0] is the stem conv, so block i is features[i]
    ends[-1] = len(backbone.features) - 1
    return ends


class PatchGridEncoder(nn.Module):
    """CPC v2's patch encoder behind the registry's interface.

    ``patch_encoder`` (a PatchEncoder) cuts the grid of patches and runs the
    backbone on each. Features: the grid's mean, (N, D). Maps: for each of
    the last three stages (fewer if the backbone has fewer), the per-patch
    mean of the stage's output, as an (N, C_k, nH, nW) grid, through a 1x1
    conv to embed_dim when given.
    """

    def __init__(self, patch_encoder: PatchEncoder, stage_channels: list[int], embed_dim: int | None = None):
        super().__init__()
        self.patch_encoder = patch_encoder
        self.feature_dim = patch_encoder.feature_dim
        self.map_channels = stage_channels[-3:]
        self.embed_dim = embed_dim
        self.embeddings = (
            None
            if embed_dim is None
            else nn.ModuleList(nn.Conv2d(c, embed_dim, kernel_size=1) for c in self.map_channels)
        )

    def forward(self, x: torch.Tensor, return_maps: bool = False):
        if not return_maps:
            return self.patch_encoder(x).mean(dim=(2, 3))  # N x D
        pe = self.patch_encoder
        patches = _patches(pe, x)  # B*nH*nW x 3 x p x p
        b, n_h, n_w = x.shape[0], *_grid_shape(pe, x)
        backbone = pe.encoder
        ends = _cpc_stage_ends(backbone)[-3:]
        stage_means, h = [], patches
        for i, layer in enumerate(backbone.features):
            h = layer(h)
            if i in ends:
                stage_means.append(h.mean(dim=(2, 3)))  # B*nH*nW x C_k
        maps = [m.reshape(b, n_h, n_w, -1).permute(0, 3, 1, 2) for m in stage_means]  # B x C_k x nH x nW
        features = maps[-1].mean(dim=(2, 3))
        if self.embeddings is not None:
            maps = [embed(m) for embed, m in zip(self.embeddings, maps)]
        return features, maps


def _grid_shape(pe: PatchEncoder, x: torch.Tensor) -> tuple[int, int]:
    return tuple((s - pe.patch_size) // pe.stride + 1 for s in x.shape[2:])


def _patches(pe: PatchEncoder, x: torch.Tensor) -> torch.Tensor:
    from csl_ext.ops.patchify import patchify

    flat = patchify(x, pe.patch_size, pe.stride).flatten(0, 2)
    return pe.patch_transform(flat) if pe.patch_transform is not None else flat


def cpc_resnet(
    width: float = 1.0,
    stem: str = "cifar",
    image_size: int = 32,
    blocks=(3, 4, 6, 3),
    base_width: int | None = None,
    embed_dim: int | None = None,
) -> PatchGridEncoder:
    """CPC v2's patch ResNet (LayerNorm) on the 7x7 grid of patches of side
    image_size / 4 at stride image_size / 8.

    Args:
        width: multiplier of the 64 first-stage channels (D = 4 x 64 x width
            x 2^(stages - 1)).
        stem: "cifar" only (patches of 8-32 px get no down-sampling stem).
        image_size: S, a multiple of 8 >= 16.
        blocks: bottleneck blocks per stage, (3, 4, 6, 3) by default.
        base_width: first-stage channels, overriding `width`.
        embed_dim: D of the maps' 1x1 embeddings (None: none).
    """
    _check_stem(stem)
    if stem != "cifar":
        raise ValueError(
            "stem must be 'cifar' for the cpc_resnet encoder: it runs on small patches "
            "(image_size / 4), which a strided 'imagenet' stem would shrink to almost nothing"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16 or image_size % 8:
        raise ValueError(f"image_size must be a multiple of 8 >= 16 for cpc_resnet, got {image_size!r}")
    channels = base_width if base_width is not None else _scaled(64, _check_width(width))
    backbone = CPCResNet(tuple(blocks), channels)
    backbone.blocks = tuple(blocks)
    pe = PatchEncoder(backbone, patch_size=image_size // 4, stride=image_size // 8)
    pe.feature_dim = backbone.out_dim
    stage_channels = [4 * channels * 2**s for s in range(len(blocks))]
    return PatchGridEncoder(pe, stage_channels, embed_dim)


ENCODERS: dict[str, Callable[..., nn.Module]] = {name: partial(torchvision_encoder, name) for name in ARCHS}
ENCODERS["amdim"] = amdim
ENCODERS["cpc_resnet"] = cpc_resnet

# The nine encoders of Falcon & Cho's Table 1, in the paper's order.
TABLE1_ENCODERS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


def check_encoder_name(name) -> str:
    if name not in ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(ENCODERS)}, got {name!r}")
    return name


def build_encoder(name: str, **kwargs) -> nn.Module:
    """ENCODERS[name](**kwargs), with an error naming the known encoders.

    Raises:
        ValueError: unknown name, or a keyword the entry does not take.
    """
    check_encoder_name(name)
    try:
        return ENCODERS[name](**kwargs)
    except TypeError as error:  # an unknown keyword: say which entry and what it got
        raise ValueError(f"encoder_kwargs for {name!r}: {error}") from None


class MultiScaleMaps(nn.Module):
    """A registry encoder as AMDIM's methods use one: images -> its three
    maps embedded to D, the last one global-average-pooled to 1x1 so that
    ``(-1:...)`` compares the global feature, as AMDIM's 1x1 map is.

    Shape: (N, 3, H, W) -> [(N, D, h3, w3), (N, D, h2, w2), (N, D, 1, 1)].
    Attributes: n_rkhs = D (the name AMDIM's methods read).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        if getattr(encoder, "embed_dim", None) is None:
            raise ValueError(
                "the encoder's maps need a common size for AMDIM-style comparisons: build it with embed_dim=D"
            )
        self.encoder = encoder
        self.n_rkhs = encoder.embed_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _, maps = self.encoder(x, return_maps=True)
        return [*maps[:-1], maps[-1].mean(dim=(2, 3), keepdim=True)]


def build_map_encoder(name: str, image_size: int = 32, **kwargs) -> nn.Module:
    """The encoder AMDIM and YADIM use: a module returning a list of maps of
    one size D (attribute ``n_rkhs``), the last one 1x1.

    "amdim" gives the AMDIMEncoder itself (its maps are already embedded);
    another entry is wrapped in MultiScaleMaps, with embed_dim defaulting to
    its feature size.
    """
    check_encoder_name(name)
    if name == "amdim":
        return build_encoder(name, image_size=image_size, **kwargs).maps_encoder
    if name == "cpc_resnet":
        kwargs.setdefault("image_size", image_size)
    kwargs = dict(kwargs)
    if kwargs.get("embed_dim") is None:
        kwargs["embed_dim"] = build_encoder(name, **{**kwargs, "embed_dim": None}).feature_dim
    return MultiScaleMaps(build_encoder(name, **kwargs))


def build_patch_encoder(name: str, image_size: int = 32, **kwargs) -> PatchEncoder:
    """The encoder CPC v2 uses: a PatchEncoder running a per-patch backbone
    on the grid of patches (side image_size / 4, stride image_size / 8),
    with attribute ``feature_dim``.

    "cpc_resnet" gives CPC v2's own backbone; a torchvision entry runs on each
    patch with ``norm="layer"`` unless told otherwise (batch statistics shared
    by the patches of one image would leak across the task, CPC v2 §4.1).
    """
    check_encoder_name(name)
    if name == "cpc_resnet":
        return build_encoder(name, image_size=image_size, **kwargs).patch_encoder
    if name == "amdim":
        raise ValueError(
            "encoder 'amdim' cannot encode CPC's patches: its fixed 7x7 / 5x5 / 1x1 geometry needs "
            "whole 32 / 64 / 128 px images; use cpc_resnet or a torchvision ResNet"
        )
    kwargs = {"norm": "layer", **kwargs}
    backbone = build_encoder(name, **kwargs)
    pe = PatchEncoder(backbone, patch_size=image_size // 4, stride=image_size // 8)
    pe.feature_dim = backbone.feature_dim
    return pe


def method_encoder(
    encoder: str,
    encoder_kwargs: dict | None,
    *,
    arch: str = "resnet18",
    width: int = 64,
    cifar_stem: bool = True,
    default: str = "resnet18",
) -> nn.Module:
    """The encoder of SimCLR / MoCo v2 / BYOL: a registry encoder by name.

    Args:
        encoder: a key of ENCODERS.
        encoder_kwargs: the entry's keyword arguments (e.g. {"width": 0.125}
            or {"zero_init_residual": True}); None: the method's legacy
            arguments below.
        arch, width, cifar_stem: the methods' legacy ResNet arguments; ``arch``
            names the encoder when `encoder` is left at its default;
            ``width`` (first-stage channels) and ``cifar_stem`` apply to a
            torchvision-architecture entry unless encoder_kwargs sets its
            width (``width`` or ``base_width``) or ``stem``.
        default: the method's default encoder name.

    Raises:
        ValueError: `encoder` and `arch` both given and different; an unknown
            name or keyword.
    """
    if arch != default and encoder != default and arch != encoder:
        raise ValueError(f"encoder={encoder!r} and arch={arch!r} name two encoders; give only encoder")
    name = arch if encoder == default else encoder
    check_encoder_name(name)
    if encoder_kwargs is not None and not isinstance(encoder_kwargs, dict):
        raise ValueError(f"encoder_kwargs must be a dict or None, got {type(encoder_kwargs).__name__}")
    stem = "cifar" if cifar_stem else "imagenet"
    if encoder_kwargs is None:
        kwargs = {"base_width": width, "stem": stem} if name in ARCHS else {}
    else:
        kwargs = dict(encoder_kwargs)
        if name in ARCHS:
            kwargs.setdefault("stem", stem)
            if "width" not in kwargs:  # e.g. {"zero_init_residual": True} keeps the method's width
                kwargs.setdefault("base_width", width)
    return build_encoder(name, **kwargs)
