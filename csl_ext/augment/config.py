"""Per-method augmentation parameters, shared by the DALI and torchvision backends.

Both backends read the same frozen dataclasses, so a parameter changed here changes
both pipelines and the parity tests keep them honest.

References:
    - [0]: SimCLR, 2020, https://arxiv.org/abs/2002.05709 (appendix A)
    - [1]: MoCo v2, 2020, https://arxiv.org/abs/2003.04297
    - [2]: BYOL, 2020, https://arxiv.org/abs/2006.07733 (table 6)
    - [3]: AMDIM, 2019, https://arxiv.org/abs/1906.00910
    - [4]: CPC v2, 2019, https://arxiv.org/abs/1905.09272
    - [5]: Falcon & Cho, 2020, https://arxiv.org/abs/2009.00104 (section 3.3, YADIM)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

METHODS = ("simclr", "moco_v2", "byol", "amdim", "cpc_v2", "yadim", "eval")
MIN_IMAGE_SIZE = 16  # smaller images leave no room for CPC patches or blur kernels


def _check_prob(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def _check_range(name: str, r: Tuple[float, float], lo: float = 0.0) -> Tuple[float, float]:
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
        translate: reflection padding in pixels before a random crop back to size
            (AMDIM "image jitter"); 0 = off.
        flip_p: probability of a horizontal flip.
        jitter, jitter_p: colour jitter strengths and the probability to apply them.
        gray_p: probability of converting to 3-channel grayscale.
        blur_p, blur_sigma, blur_kernel: Gaussian blur probability, sigma range and
            odd kernel side in pixels (0 = off).
        solarize_p: probability of solarising (pixels >= 128 of 255 are inverted).
    """

    crop_scale: Optional[Tuple[float, float]] = (0.08, 1.0)
    crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    translate: int = 0
    flip_p: float = 0.5
    jitter: ColorJitter = field(default_factory=ColorJitter)
    jitter_p: float = 0.0
    gray_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 0
    solarize_p: float = 0.0

    def __post_init__(self):
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
            _check_prob(name, getattr(self, name))
        if self.crop_scale is not None:
            lo, hi = _check_range("crop_scale", self.crop_scale)
            if lo <= 0 or hi > 1:
                raise ValueError(f"crop_scale must lie in (0, 1], got {self.crop_scale!r}")
            _check_range("crop_ratio", self.crop_ratio)
            if self.crop_ratio[0] <= 0:
                raise ValueError(f"crop_ratio must be positive, got {self.crop_ratio!r}")
        if self.translate < 0:
            raise ValueError(f"translate must be >= 0 pixels, got {self.translate!r}")
        if self.blur_p > 0:
            _check_range("blur_sigma", self.blur_sigma)
            if self.blur_sigma[0] <= 0:
                raise ValueError(f"blur_sigma must be positive, got {self.blur_sigma!r}")
            if self.blur_kernel < 3 or self.blur_kernel % 2 == 0:
                raise ValueError(
                    f"blur_kernel must be an odd size >= 3 when blur_p > 0, got {self.blur_kernel!r}"
                )

    @property
    def blur_enabled(self) -> bool:
        return self.blur_p > 0 and self.blur_kernel >= 3


@dataclass(frozen=True)
class PatchConfig:
    """CPC v2 patch grid and per-patch augmentation [4].

    The grid is ``images.unfold(2, p, s).unfold(3, p, s)``: (B, nH, nW, 3, p, p) with
    ``nH = (H - p) // s + 1``, e.g. a 7x7 grid for 32/8/4. Per-patch augmentation
    runs after patchify, independently for every patch: horizontal flip, brightness
    and contrast jitter (applied with ``jitter_p``) and grayscale.
    """

    patch_size: int
    stride: int
    flip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    jitter_p: float = 0.8
    gray_p: float = 0.25

    def __post_init__(self):
        if self.patch_size < 2:
            raise ValueError(f"patch_size must be >= 2, got {self.patch_size!r}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride!r}")
        for name in ("flip_p", "jitter_p", "gray_p"):
            _check_prob(f"patch.{name}", getattr(self, name))
        for name in ("brightness", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"patch.{name} must be >= 0, got {getattr(self, name)!r}")

    def grid(self, image_size: int) -> int:
        """Patches per side, e.g. 7 for a 32 px image with 8 px patches at stride 4."""
        return (image_size - self.patch_size) // self.stride + 1


@dataclass(frozen=True)
class MethodConfig:
    """Everything a backend needs to build one method's augmentation.

    Attributes:
        method: one of :data:`METHODS`.
        image_size: output side S; every view is (3, S, S) before patchify.
        views: one :class:`ViewConfig` per output view (2 for the two-view methods,
            1 for CPC v2 and eval).
        mean, std: per-channel normalisation in [0, 1] pixel units.
        patch: CPC v2 patch grid, or None.
        eval_resize: for ``eval`` only, the shorter-side resize before the centre crop.
    """

    method: str
    image_size: int
    views: Tuple[ViewConfig, ...]
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    patch: Optional[PatchConfig] = None
    eval_resize: Optional[int] = None

    def __post_init__(self):
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {self.mean!r}, {self.std!r}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std!r}")

    @property
    def num_views(self) -> int:
        return len(self.views)


def blur_kernel_for(image_size: int) -> int:
    """Odd kernel side of about 10% of the image side (SimCLR [0]), e.g. 23 for 224."""
    k = int(0.1 * image_size)
    return max(3, k // 2 * 2 + 1)


def method_config(
    method: str,
    image_size: int,
    *,
    strength: float = 1.0,
    blur: Optional[bool] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    jitter_mode: str = "crop",
    **overrides,
) -> MethodConfig:
    """Build the published parameters of ``method`` for ``image_size`` pixels.

    Args:
        method: one of ``simclr, moco_v2, byol, amdim, cpc_v2, yadim, eval``.
        image_size: output side S (>= 16).
        strength: SimCLR colour-jitter strength s (brightness/contrast/saturation
            0.8·s, hue 0.2·s); only SimCLR uses it.
        blur: Gaussian blur on/off; None = on for images larger than 32 px, off at
            32 px and below as in SimCLR's CIFAR setting [0].
        mean, std: normalisation; default CIFAR statistics for S <= 32, ImageNet's
            otherwise.
        jitter_mode: AMDIM/CPC "image jitter": ``"crop"`` (random resized crop,
            scale 0.3-1, ratio 0.7-1.4, as the AMDIM reference code) or
            ``"translate"`` (reflection padding of S/8 px and a random crop back).
        **overrides: ViewConfig fields applied to every view, e.g. ``gray_p=0.0``.

    Returns:
        A frozen :class:`MethodConfig`.

    Raises:
        ValueError: unknown ``method`` or ``jitter_mode``, ``image_size`` < 16,
            ``strength`` < 0, or a probability outside [0, 1].
    """
    method = str(method).lower().replace("-", "_")
    aliases = {"moco": "moco_v2", "mocov2": "moco_v2", "cpc": "cpc_v2", "cpcv2": "cpc_v2"}
    method = aliases.get(method, method)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be an int >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength!r}")
    if jitter_mode not in ("crop", "translate"):
        raise ValueError(f"jitter_mode must be 'crop' or 'translate', got {jitter_mode!r}")

    small = image_size <= 32
    if mean is None:
        mean = CIFAR_MEAN if small else IMAGENET_MEAN
    if std is None:
        std = CIFAR_STD if small else IMAGENET_STD
    use_blur = (not small) if blur is None else bool(blur)
    k = blur_kernel_for(image_size) if use_blur else 0
    bp = (lambda p: p if use_blur else 0.0)

    patch = None
    eval_resize = None
    amdim_crop = dict(crop_scale=(0.3, 1.0), crop_ratio=(0.7, 1.4))
    amdim_translate = dict(crop_scale=None, translate=max(1, image_size // 8))
    amdim_jit = ColorJitter(0.4, 0.4, 0.4, 0.125)  # AMDIM reference code

    if method == "simclr":
        s = strength
        views = (
            ViewConfig(
                crop_scale=(0.08, 1.0),
                jitter=ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.5, 0.2 * s)),
                jitter_p=0.8, gray_p=0.2, blur_p=bp(0.5), blur_kernel=k,
            ),
        ) * 2
    elif method == "moco_v2":
        views = (
            ViewConfig(
                crop_scale=(0.2, 1.0), jitter=ColorJitter(0.4, 0.4, 0.4, 0.1),
                jitter_p=0.8, gray_p=0.2, blur_p=bp(0.5), blur_kernel=k,
            ),
        ) * 2
    elif method == "byol":
        base = dict(crop_scale=(0.08, 1.0), jitter=ColorJitter(0.4, 0.4, 0.2, 0.1),
                    jitter_p=0.8, gray_p=0.2, blur_kernel=k)
        # asymmetric views (BYOL table 6): blur 1.0 / 0.1, solarise 0.0 / 0.2
        views = (
            ViewConfig(**base, blur_p=bp(1.0), solarize_p=0.0),
            ViewConfig(**base, blur_p=bp(0.1), solarize_p=0.2),
        )
    elif method in ("amdim", "cpc_v2"):
        geo = amdim_crop if jitter_mode == "crop" else amdim_translate
        views = (ViewConfig(**geo, jitter=amdim_jit, jitter_p=0.8, gray_p=0.25),)
        if method == "amdim":
            views = views * 2
        else:
            p = max(2, image_size // 4)  # e.g. 8 px patches at stride 4 -> 7x7 grid for 32 px
            patch = PatchConfig(patch_size=p, stride=max(1, p // 2))
    elif method == "yadim":
        # union of the AMDIM and CPC stages, all in sequence: flip, random resized
        # crop, translation with reflection padding, colour jitter, grayscale, normalise
        views = (
            ViewConfig(**amdim_crop, translate=max(1, image_size // 8), jitter=amdim_jit,
                       jitter_p=0.8, gray_p=0.25),
        ) * 2
    else:  # eval: resize the shorter side (x 256/224 above 32 px), centre crop, normalise
        views = (ViewConfig(crop_scale=None, flip_p=0.0),)
        eval_resize = image_size if small else int(round(image_size * 256 / 224))

    if overrides:
        bad = set(overrides) - {f.name for f in dataclasses.fields(ViewConfig)}
        if bad:
            raise ValueError(f"unknown ViewConfig override(s) {sorted(bad)}")
        views = tuple(dataclasses.replace(v, **overrides) for v in views)
    return MethodConfig(method=method, image_size=image_size, views=views,
                        mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                        patch=patch, eval_resize=eval_resize)
