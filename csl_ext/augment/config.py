"""Per-method augmentation parameters, shared by the DALI and torchvision backends.

Both backends read the same frozen dataclasses, so a parameter changed here changes
both pipelines and the parity tests keep them honest. The recipes themselves (which
parameters each method uses at which image size) live in :mod:`.recipes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from csl_ext.ops.patchify import patch_grid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

MIN_IMAGE_SIZE = 16  # smaller images leave no room for CPC patches or blur kernels
INTERPOLATIONS = ("bilinear", "bicubic")


def _check_prob(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def _check_range(name: str, r: tuple[float, float], lo: float = 0.0) -> tuple[float, float]:
    if len(r) != 2 or not (lo <= r[0] <= r[1]):
        raise ValueError(f"{name} must be a (min, max) pair with {lo} <= min <= max, got {r!r}")
    return (float(r[0]), float(r[1]))


@dataclass(frozen=True)
class ColorJitter:
    """Colour jitter strengths with torchvision's meaning.

    brightness/contrast/saturation ``b`` draw a factor in ``[max(0, 1 - b), 1 + b]``;
    hue ``h`` draws a shift in ``[-h, h]`` turns of the colour wheel (h <= 0.5).
    """

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"jitter.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"jitter.hue must be in [0, 0.5], got {self.hue!r}")

    @property
    def active(self) -> bool:
        return any((self.brightness, self.contrast, self.saturation, self.hue))


@dataclass(frozen=True)
class ViewConfig:
    """One view's stages, applied in this order: geometry (random resized crop or
    resize), translation jitter, flip, colour jitter, grayscale, blur, solarise,
    normalise.

    Attributes:
        crop_scale: area fraction range of the random resized crop; None = no crop
            (the image is resized to ``image_size`` when it is not already that size).
        crop_ratio: aspect-ratio range of the random resized crop.
        interpolation: resampling of the random resized crop, ``"bilinear"`` or
            ``"bicubic"`` (AMDIM's reference uses bicubic).
        translate: reflection padding in pixels before a random crop back to size
            (AMDIM's "image jitter", ``RandomTranslateWithReflect``); 0 = off.
        translate_p: probability of applying the translation.
        flip_p: probability of a horizontal flip of this view alone (see
            :attr:`MethodConfig.shared_flip_p` for one flip shared by all views).
        jitter, jitter_p: colour jitter strengths and the probability to apply them.
        gray_p: probability of converting to 3-channel grayscale.
        blur_p, blur_sigma, blur_kernel: Gaussian blur probability, sigma range and
            odd kernel side in pixels (0 = off).
        solarize_p: probability of solarising (pixels >= 128 of 255 are inverted).
    """

    crop_scale: tuple[float, float] | None = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"
    translate: int = 0
    translate_p: float = 1.0
    flip_p: float = 0.5
    jitter: ColorJitter = field(default_factory=ColorJitter)
    jitter_p: float = 0.0
    gray_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 0
    solarize_p: float = 0.0

    def __post_init__(self):
        for name in ("translate_p", "flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
            _check_prob(name, getattr(self, name))
        if self.crop_scale is not None:
            lo, hi = _check_range("crop_scale", self.crop_scale)
            if lo <= 0 or hi > 1:
                raise ValueError(f"crop_scale must lie in (0, 1], got {self.crop_scale!r}")
            _check_range("crop_ratio", self.crop_ratio)
            if self.crop_ratio[0] <= 0:
                raise ValueError(f"crop_ratio must be positive, got {self.crop_ratio!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.translate < 0:
            raise ValueError(f"translate must be >= 0 pixels, got {self.translate!r}")
        if self.blur_p > 0:
            _check_range("blur_sigma", self.blur_sigma)
            if self.blur_sigma[0] <= 0:
                raise ValueError(f"blur_sigma must be positive, got {self.blur_sigma!r}")
            if self.blur_kernel < 3 or self.blur_kernel % 2 == 0:
                raise ValueError(f"blur_kernel must be an odd size >= 3 when blur_p > 0, got {self.blur_kernel!r}")

    @property
    def blur_enabled(self) -> bool:
        return self.blur_p > 0 and self.blur_kernel >= 3

    @property
    def translate_enabled(self) -> bool:
        return self.translate > 0 and self.translate_p > 0


COLOR_DROP_FILLS = ("kept", "mean")  # what a dropped colour channel holds (PatchConfig.color_drop_fill)


@dataclass(frozen=True)
class PatchConfig:
    """Patch grid and per-patch augmentation (CPC v2 [0]; YADIM's patch stage).

    The grid is ``csl_ext.ops.patchify``: (B, nH, nW, 3, p, p) with
    ``nH = patch_grid(H, p, s)``, e.g. a 7x7 grid for 32/8/4. Per-patch
    augmentation runs after patchify, independently for every patch, in this order:
    horizontal flip (``flip_p``); brightness and contrast jitter (applied with
    ``jitter_p``); grayscale (``gray_p``); colour dropping (``color_drop_p``: keep
    one of the three channels, drawn uniformly; ``color_drop_fill`` says what the
    other two hold).

    The defaults are CPC v2's patch augmentation: colour dropping in every patch
    ([0] §4.1, after Doersch et al. 2015) and a horizontal flip, plus brightness
    and contrast jitter per patch (p 0.8, strengths 0.4: AMDIM's image-stage
    values), csl_ext's stand-in for [0]'s further per-patch colour transforms
    (docs/augment.md). The task contrasts each prediction with every patch of
    the batch, so a cue that all 49 patches of one image share and the content
    does not, such as the brightness and contrast that the image stage draws once
    per image, identifies the image without the content; colour dropping removes
    the chromatic cues, the per-patch jitter the achromatic ones. Grayscale is off.

    ``color_drop_fill`` (the text of [0] we read does not say; this project's
    choice): ``"kept"`` copies the kept channel into the other two, so the patch
    becomes a grey image of one channel. No cross-channel cue survives, and the
    patch stays an image of the kind the encoder is evaluated on (three
    correlated channels). ``"mean"`` sets them to the normalisation mean (0
    after normalising): the encoder then trains on one-channel inputs only and is
    evaluated on three-channel images, a shift that costs CPC v2 accuracy
    (docs/quality.md#cpc-v2).

    - [0]: CPC v2, Hénaff et al. 2020, https://arxiv.org/abs/1905.09272
    """

    patch_size: int
    stride: int
    flip_p: float = 0.5
    color_drop_p: float = 1.0
    brightness: float = 0.4
    contrast: float = 0.4
    jitter_p: float = 0.8
    gray_p: float = 0.0
    color_drop_fill: str = "kept"

    def __post_init__(self):
        if self.patch_size < 2:
            raise ValueError(f"patch_size must be >= 2, got {self.patch_size!r}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride!r}")
        for name in ("flip_p", "color_drop_p", "jitter_p", "gray_p"):
            _check_prob(f"patch.{name}", getattr(self, name))
        for name in ("brightness", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"patch.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.color_drop_fill not in COLOR_DROP_FILLS:
            raise ValueError(f"patch.color_drop_fill must be one of {COLOR_DROP_FILLS}, got {self.color_drop_fill!r}")

    def grid(self, image_size: int) -> int:
        """Patches per side, e.g. 7 for a 32 px image with 8 px patches at stride 4."""
        return patch_grid(image_size, self.patch_size, self.stride)


@dataclass(frozen=True)
class MethodConfig:
    """Everything a backend needs to build one method's augmentation.

    Attributes:
        method: one of :data:`.recipes.RECIPES`.
        image_size: output side S; every view is (3, S, S) before patchify.
        views: one :class:`ViewConfig` per output view (2 for the two-view methods,
            1 for CPC v2 and eval).
        mean, std: per-channel normalisation in [0, 1] pixel units.
        patch: CPC v2 patch grid, or None.
        eval_resize: for ``eval`` only, the shorter-side resize before the centre crop.
        shared_flip_p: probability of one horizontal flip drawn per image and applied
            to every view (AMDIM's reference flips the image before making its two
            views); the views' own ``flip_p`` must then be 0.
    """

    method: str
    image_size: int
    views: tuple[ViewConfig, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    patch: PatchConfig | None = None
    eval_resize: int | None = None
    shared_flip_p: float = 0.0

    def __post_init__(self):
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {self.mean!r}, {self.std!r}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std!r}")
        _check_prob("shared_flip_p", self.shared_flip_p)
        if self.shared_flip_p > 0 and any(v.flip_p > 0 for v in self.views):
            raise ValueError(
                "shared_flip_p > 0 needs flip_p = 0 in every view (one flip per image), got "
                f"flip_p {[v.flip_p for v in self.views]}"
            )

    @property
    def num_views(self) -> int:
        return len(self.views)


def blur_kernel_for(image_size: int) -> int:
    """Odd kernel side of about 10% of the image side (SimCLR), e.g. 23 for 224."""
    k = int(0.1 * image_size)
    return max(3, k // 2 * 2 + 1)


def method_config(
    method: str,
    image_size: int,
    *,
    strength: float | None = None,
    blur: bool | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    jitter_mode: str | None = None,
    **overrides,
) -> MethodConfig:
    """The published parameters of ``method`` at ``image_size`` pixels: the recipe
    table of :mod:`.recipes`, where the arguments are described
    (:func:`.recipes.method_config`)."""
    from .recipes import method_config as from_recipes  # recipes imports this module

    return from_recipes(
        method, image_size, strength=strength, blur=blur, mean=mean, std=std, jitter_mode=jitter_mode, **overrides
    )
