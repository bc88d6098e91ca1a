"""Each method's published augmentation, one small recipe function per method.

A recipe maps the image size (and the few user choices in :class:`RecipeArgs`) to the
views of :class:`.config.MethodConfig`; :func:`method_config` looks the recipe up in
:data:`RECIPE_TABLE`, then applies normalisation and per-view overrides.

References (the lines followed are listed in docs/augment.md):
    - [0]: SimCLR, 2020, https://arxiv.org/abs/2002.05709 (appendix A); code
      google-research/simclr (``data_util.py``; README's CIFAR-10 command)
    - [1]: MoCo v2, 2020, https://arxiv.org/abs/2003.04297
    - [2]: BYOL, 2020, https://arxiv.org/abs/2006.07733 (table 6)
    - [3]: AMDIM, 2019, https://arxiv.org/abs/1906.00910; code
      Philip-Bachman/amdim-public ``datasets.py`` (TransformsC10 / STL10 / ImageNet128)
    - [4]: CPC v2, 2020, https://arxiv.org/abs/1905.09272 (§4.1)
    - [5]: Falcon & Cho, 2020, https://arxiv.org/abs/2009.00104 (§3.3, YADIM)
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_IMAGE_SIZE,
    ColorJitter,
    MethodConfig,
    PatchConfig,
    ViewConfig,
    blur_kernel_for,
)

JITTER_MODES = ("crop", "translate")
# names other code and papers use for the same recipe -> the canonical (registry) name
_OTHER_NAMES = {
    "moco": "moco_v2",
    "mocov2": "moco_v2",
    "moco-v2": "moco_v2",
    "cpc": "cpc_v2",
    "cpcv2": "cpc_v2",
    "cpc-v2": "cpc_v2",
}


@dataclass(frozen=True)
class RecipeArgs:
    """What a recipe may depend on.

    Attributes:
        image_size: output side S.
        strength: SimCLR colour-jitter strength s, or None for the size default.
        blur: Gaussian blur on/off, or None for the size default.
        jitter_mode: AMDIM / CPC / YADIM geometry, ``"crop"``, ``"translate"`` or
            None for the reference's choice at this size.
    """

    image_size: int
    strength: float | None = None
    blur: bool | None = None
    jitter_mode: str | None = None

    @property
    def small(self) -> bool:
        """32 px and below: the CIFAR settings."""
        return self.image_size <= 32

    @property
    def use_blur(self) -> bool:
        return (not self.small) if self.blur is None else bool(self.blur)

    @property
    def blur_kernel(self) -> int:
        return blur_kernel_for(self.image_size) if self.use_blur else 0

    def blur_p(self, p: float) -> float:
        return p if self.use_blur else 0.0


@dataclass(frozen=True)
class Recipe:
    """A recipe's output: the views and the method-level stages."""

    views: tuple[ViewConfig, ...]
    shared_flip_p: float = 0.0
    patch: PatchConfig | None = None
    eval_resize: int | None = None


def simclr(a: RecipeArgs) -> Recipe:
    """SimCLR [0]: crop 0.08-1, flip, colour jitter (0.8s, 0.8s, 0.8s, 0.2s) with p 0.8,
    grayscale 0.2, blur 0.5. s = 0.5 and no blur at 32 px (the authors' CIFAR-10
    command: ``--color_jitter_strength=0.5 --use_blur=False``), s = 1 with blur above."""
    s = (0.5 if a.small else 1.0) if a.strength is None else a.strength
    colour = ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.5, 0.2 * s))
    view = ViewConfig(
        crop_scale=(0.08, 1.0), jitter=colour, jitter_p=0.8, gray_p=0.2, blur_p=a.blur_p(0.5), blur_kernel=a.blur_kernel
    )
    return Recipe(views=(view, view))


def moco_v2(a: RecipeArgs) -> Recipe:
    """MoCo v2 [1]: crop 0.2-1, flip, colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8, gray 0.2, blur 0.5."""
    view = ViewConfig(
        crop_scale=(0.2, 1.0),
        jitter=ColorJitter(0.4, 0.4, 0.4, 0.1),
        jitter_p=0.8,
        gray_p=0.2,
        blur_p=a.blur_p(0.5),
        blur_kernel=a.blur_kernel,
    )
    return Recipe(views=(view, view))


def byol(a: RecipeArgs) -> Recipe:
    """BYOL [2] table 6: asymmetric views, blur 1.0 / 0.1 and solarise 0.0 / 0.2."""
    common = dict(
        crop_scale=(0.08, 1.0),
        jitter=ColorJitter(0.4, 0.4, 0.2, 0.1),
        jitter_p=0.8,
        gray_p=0.2,
        blur_kernel=a.blur_kernel,
    )
    first = ViewConfig(**common, blur_p=a.blur_p(1.0), solarize_p=0.0)
    second = ViewConfig(**common, blur_p=a.blur_p(0.1), solarize_p=0.2)
    return Recipe(views=(first, second))


def amdim_view(a: RecipeArgs, *, translate_and_crop: bool = False) -> ViewConfig:
    """One view of AMDIM's reference transforms [3] at this size, without the flip.

    amdim-public ``datasets.py``: 32 px (TransformsC10) translation by up to 4 px with
    reflection, applied with p 0.8, and no crop; 64 px (TransformsSTL10) and 128 px
    (TransformsImageNet128) a bicubic random resized crop, scale 0.3-1, ratio 0.7-1.4.
    Then colour jitter (0.4, 0.4, 0.4, hue) with p 0.8, hue 0.2 up to 64 px and 0.1
    above, and grayscale 0.25. ``translate_and_crop`` gives both geometries (YADIM).
    """
    mode = a.jitter_mode or ("translate" if a.small else "crop")
    translate = dict(translate=max(1, a.image_size // 8), translate_p=0.8)  # 4 px at 32
    crop = dict(crop_scale=(0.3, 1.0), crop_ratio=(0.7, 1.4), interpolation="bicubic")
    if translate_and_crop:
        geometry = {**crop, **translate}
    elif mode == "translate":
        geometry = dict(crop_scale=None, **translate)
    else:
        geometry = crop
    hue = 0.2 if a.image_size <= 64 else 0.1
    return ViewConfig(**geometry, flip_p=0.0, jitter=ColorJitter(0.4, 0.4, 0.4, hue), jitter_p=0.8, gray_p=0.25)


def amdim(a: RecipeArgs) -> Recipe:
    """AMDIM [3]: one flip per image (amdim-public flips ``inp`` once, then applies its
    transform twice), then two independent draws of :func:`amdim_view`."""
    view = amdim_view(a)
    return Recipe(views=(view, view), shared_flip_p=0.5)


def cpc_v2(a: RecipeArgs) -> Recipe:
    """CPC v2 [4]: AMDIM's image stages with their flip (as pl_bolts'
    CPCTrainTransformsCIFAR10), the grid of S/4 patches at stride S/8 (7x7), and
    per patch: colour dropping and a horizontal flip (:class:`.config.PatchConfig`)."""
    view = dataclasses.replace(amdim_view(a), flip_p=0.5)
    patch_size = max(2, a.image_size // 4)  # e.g. 8 px patches at stride 4 -> 7x7 grid for 32 px
    return Recipe(views=(view,), patch=PatchConfig(patch_size=patch_size, stride=max(1, patch_size // 2)))


def yadim(a: RecipeArgs) -> Recipe:
    """YADIM [5]: the union of the AMDIM and CPC image stages, for anchor and positive:
    one flip per image, random resized crop, translation, colour jitter, grayscale,
    normalise. The per-patch stage runs on the device (:mod:`.patch_stage`)."""
    view = amdim_view(a, translate_and_crop=True)
    return Recipe(views=(view, view), shared_flip_p=0.5)


def evaluation(a: RecipeArgs) -> Recipe:
    """Evaluation: resize the shorter side (x 256/224 above 32 px), centre crop, normalise."""
    resize = a.image_size if a.small else int(round(a.image_size * 256 / 224))
    return Recipe(views=(ViewConfig(crop_scale=None, flip_p=0.0),), eval_resize=resize)


RECIPE_TABLE: dict[str, Callable[[RecipeArgs], Recipe]] = {
    "simclr": simclr,
    "moco_v2": moco_v2,
    "byol": byol,
    "amdim": amdim,
    "cpc_v2": cpc_v2,
    "yadim": yadim,
    "eval": evaluation,
}
RECIPES = tuple(RECIPE_TABLE)  # the method registry's names, plus "eval"


def canonical_recipe(name: str) -> str:
    """``name`` if it is one of :data:`RECIPES`, else a ValueError that suggests the canonical name.

    Raises:
        ValueError: e.g. ``method must be one of (...), got 'moco'; did you mean 'moco_v2'?``
    """
    if name in RECIPE_TABLE:
        return name
    key = str(name).lower()
    guess = _OTHER_NAMES.get(key) or (key if key in RECIPE_TABLE else None)
    guess = guess or next(iter(difflib.get_close_matches(key, RECIPES, n=1, cutoff=0.6)), None)
    hint = f"; did you mean {guess!r}?" if guess else ""
    raise ValueError(f"method must be one of {RECIPES}, got {name!r}{hint}")


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
    """Build the published parameters of ``method`` for ``image_size`` pixels.

    Args:
        method: one of :data:`RECIPES` (``simclr, moco_v2, byol, amdim, cpc_v2, yadim,
            eval``), the method registry's names.
        image_size: output side S (>= 16).
        strength: SimCLR colour-jitter strength s (brightness/contrast/saturation
            0.8·s, hue 0.2·s); None = 0.5 at 32 px and below (SimCLR's CIFAR-10
            setting), 1.0 above. Only SimCLR uses it.
        blur: Gaussian blur on/off; None = on for images larger than 32 px, off at
            32 px and below as in SimCLR's CIFAR setting [0].
        mean, std: normalisation; default CIFAR statistics for S <= 32, ImageNet's
            otherwise.
        jitter_mode: AMDIM / CPC v2 geometry: None = the reference's choice at this
            size (translation at <= 32 px, random resized crop above), ``"crop"`` or
            ``"translate"`` to force one. YADIM always uses both.
        **overrides: ViewConfig fields applied to every view, e.g. ``gray_p=0.0``;
            ``flip_p`` on AMDIM / YADIM replaces the one flip per image (``0.5``:
            an independent flip per view, ``0.0``: no flip).

    Returns:
        A frozen :class:`.config.MethodConfig`.

    Raises:
        ValueError: unknown ``method`` (with the canonical name suggested, e.g.
            ``"moco"`` -> ``"moco_v2"``) or ``jitter_mode``, ``image_size`` < 16,
            ``strength`` < 0, an unknown override, or a probability outside [0, 1].
    """
    method = canonical_recipe(method)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be an int >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    if strength is not None and strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength!r}")
    if jitter_mode is not None and jitter_mode not in JITTER_MODES:
        raise ValueError(f"jitter_mode must be one of {JITTER_MODES} or None, got {jitter_mode!r}")
    args = RecipeArgs(image_size=image_size, strength=strength, blur=blur, jitter_mode=jitter_mode)
    recipe = RECIPE_TABLE[method](args)
    views = recipe.views
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(ViewConfig)}
        if unknown:
            raise ValueError(f"unknown ViewConfig override(s) {sorted(unknown)}")
        views = tuple(dataclasses.replace(v, **overrides) for v in views)
    # a flip_p asked for replaces the one shared flip (AMDIM, YADIM): 0 = no flip at all
    shared_flip_p = 0.0 if "flip_p" in overrides else recipe.shared_flip_p
    mean = (CIFAR_MEAN if args.small else IMAGENET_MEAN) if mean is None else mean
    std = (CIFAR_STD if args.small else IMAGENET_STD) if std is None else std
    return MethodConfig(
        method=method,
        image_size=image_size,
        views=views,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        patch=recipe.patch,
        eval_resize=recipe.eval_resize,
        shared_flip_p=shared_flip_p,
    )
