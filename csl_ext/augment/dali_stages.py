"""DALI building blocks: one function per augmentation stage.

Each stage takes and returns an HWC uint8 DataNode. Operators follow their input's
placement, so the same code builds a CPU pipeline (``device_id=None``) or a GPU one
(input from ``"mixed"`` decoding or ``.gpu()``); random draws are CPU argument
inputs either way. Stages with a probability use DALI conditionals
(``enable_conditionals=True``) so skipped samples cost nothing; p = 0 builds no
operator and p = 1 builds no branch.

- [0]: SimCLR, 2020, https://arxiv.org/abs/2002.05709
"""

from __future__ import annotations

import nvidia.dali.math as dmath
from nvidia.dali import fn, types

from .config import ColorJitter, ViewConfig


def coin(p: float):
    """Per-sample bool, True with probability ``p``."""
    return fn.random.coin_flip(probability=float(p), dtype=types.BOOL)


def _coin_float(p: float):
    return fn.cast(fn.random.coin_flip(probability=float(p)), dtype=types.FLOAT)


def _factor(strength: float):
    """Per-sample factor in [max(0, 1 - b), 1 + b], torchvision's ColorJitter range."""
    return fn.random.uniform(range=[max(0.0, 1.0 - strength), 1.0 + strength])


_INTERP = {"bilinear": types.INTERP_LINEAR, "bicubic": types.INTERP_CUBIC}


def random_resized_crop(x, size: int, scale, ratio, interpolation: str = "bilinear"):
    """Random area fraction ``scale`` and aspect ``ratio`` crop, resized to size x size."""
    return fn.random_resized_crop(
        x,
        size=[size, size],
        random_area=list(scale),
        random_aspect_ratio=list(ratio),
        interp_type=_INTERP[interpolation],
    )


def resize(x, size: int):
    """Resize to exactly size x size (file inputs of any size, views without a crop)."""
    return fn.resize(x, size=[size, size])


def reflect_pad(x, pad: int):
    """Reflection padding by ``pad`` pixels on every side (numpy's "reflect": the
    edge pixel is not repeated). DALI has no reflect border mode, so the borders are
    mirrored slices glued on with ``fn.cat``. Needs pad < H and pad < W."""
    left = fn.flip(fn.slice(x, start=[1], shape=[pad], axes=[1]), horizontal=1, vertical=0)
    # right border is columns W-2 .. W-1-pad; W is per sample, so take columns
    # 1 .. pad of the mirrored image, which are exactly those, in that order
    right = fn.slice(fn.flip(x, horizontal=1, vertical=0), start=[1], shape=[pad], axes=[1])
    x = fn.cat(left, x, right, axis=1)
    top = fn.flip(fn.slice(x, start=[1], shape=[pad], axes=[0]), horizontal=0, vertical=1)
    xv = fn.flip(x, horizontal=0, vertical=1)
    bottom = fn.slice(xv, start=[1], shape=[pad], axes=[0])
    return fn.cat(top, x, bottom, axis=0)


def translate(x, size: int, pad: int, p: float = 1.0):
    """AMDIM image jitter with probability ``p``: reflection-pad by ``pad`` and crop
    size x size at a random integer offset in [0, 2 * pad] per axis (torchvision
    ``RandomCrop(padding_mode="reflect")``; amdim-public's RandomTranslateWithReflect
    draws the shift in [-pad, pad] per axis and fills with the same reflection)."""
    if p <= 0:
        return x
    if p < 1:
        if coin(p):
            x = translate(x, size, pad)
        return x
    x = reflect_pad(x, pad)
    # crop_pos in [0, 1] maps to offset round(pos * 2 * pad); draw the integer offset
    # uniformly so both ends are as likely as the middle
    off_x = fn.random.uniform(values=[float(i) / (2 * pad) for i in range(2 * pad + 1)])
    off_y = fn.random.uniform(values=[float(i) / (2 * pad) for i in range(2 * pad + 1)])
    return fn.crop(x, crop=[size, size], crop_pos_x=off_x, crop_pos_y=off_y)


def color(x, jitter: ColorJitter, jitter_p: float, gray_p: float):
    """Colour jitter (applied with ``jitter_p``) then grayscale (``gray_p``) in one
    ``color_twist``: grayscale is saturation 0, and all of brightness, contrast, hue
    and saturation fold into one affine colour transform, so one pass does both.
    Unlike torchvision's ColorJitter the order of the four factors is fixed and
    contrast pivots on mid-grey; the parity tests bound the difference."""
    use_jitter = jitter_p > 0 and jitter.active
    if not use_jitter and gray_p == 0:
        return x
    args = {}
    if use_jitter:
        on = _coin_float(jitter_p) if jitter_p < 1 else 1.0

        def mix(f):  # 1 + on * (f - 1): identity where jitter is off
            return 1.0 + on * (f - 1.0)

        if jitter.brightness:
            args["brightness"] = mix(_factor(jitter.brightness))
        if jitter.contrast:
            args["contrast"] = mix(_factor(jitter.contrast))
        if jitter.saturation:
            args["saturation"] = mix(_factor(jitter.saturation))
        if jitter.hue:
            deg = 360.0 * jitter.hue  # torchvision's hue is in turns, DALI's in degrees
            args["hue"] = on * fn.random.uniform(range=[-deg, deg])
    if gray_p > 0:
        keep = 1.0 - _coin_float(gray_p)
        args["saturation"] = args["saturation"] * keep if "saturation" in args else keep
    return fn.color_twist(x, **args)


def gaussian_blur(x, p: float, kernel: int, sigma):
    """Gaussian blur with probability ``p``, sigma ~ U(sigma), square odd kernel."""
    if p <= 0:
        return x
    s = fn.random.uniform(range=list(sigma))
    if p >= 1:
        return fn.gaussian_blur(x, window_size=kernel, sigma=s)
    if coin(p):
        x = fn.gaussian_blur(x, window_size=kernel, sigma=s)
    return x


def solarize(x, p: float):
    """Solarise with probability ``p``: pixels >= 128 become 255 - x, which for uint8
    is min(x, 255 - x)."""
    if p <= 0:
        return x
    if p >= 1:
        return fn.cast(dmath.min(x, 255 - x), dtype=types.UINT8)
    if coin(p):
        x = fn.cast(dmath.min(x, 255 - x), dtype=types.UINT8)
    return x


def flip_coin(flip_p: float):
    """Per-sample 0/1 mirror flag for :func:`flip_normalize` (the int 0 when p = 0)."""
    return fn.random.coin_flip(probability=float(flip_p)) if flip_p > 0 else 0


def flip_normalize(x, mirror, mean, std):
    """Horizontal flip where ``mirror`` is 1, HWC uint8 -> CHW float32 normalised by
    mean/std given in [0, 1] units; one fused operator."""
    return fn.crop_mirror_normalize(
        x,
        mirror=mirror,
        dtype=types.FLOAT,
        output_layout="CHW",
        mean=[255.0 * m for m in mean],
        std=[255.0 * s for s in std],
    )


def view(x, cfg: ViewConfig, size: int, mean, std, *, needs_resize: bool, shared_mirror=None):
    """All stages of one view, in :class:`ViewConfig`'s order.

    Args:
        x: HWC uint8 DataNode.
        cfg: the view's parameters.
        size: output side S.
        mean, std: normalisation in [0, 1] units (use 0 / 1 for un-normalised [0, 1]).
        needs_resize: True when inputs may not be S x S (files, other array sizes).
        shared_mirror: the per-image flip flag drawn once for all views (AMDIM), or
            None for this view's own ``flip_p``. Applied last, with the
            normalisation: crop, translation and colour stages are mirror-symmetric
            in distribution, so this equals flipping the input first.

    Returns:
        CHW float32 DataNode of shape (3, S, S).
    """
    if cfg.crop_scale is not None:
        x = random_resized_crop(x, size, cfg.crop_scale, cfg.crop_ratio, cfg.interpolation)
    elif needs_resize:
        x = resize(x, size)
    if cfg.translate_enabled:
        x = translate(x, size, cfg.translate, cfg.translate_p)
    x = color(x, cfg.jitter, cfg.jitter_p, cfg.gray_p)
    if cfg.blur_enabled:
        x = gaussian_blur(x, cfg.blur_p, cfg.blur_kernel, cfg.blur_sigma)
    x = solarize(x, cfg.solarize_p)
    mirror = flip_coin(cfg.flip_p) if shared_mirror is None else shared_mirror
    return flip_normalize(x, mirror, mean, std)


def eval_view(x, size: int, resize_shorter, mean, std):
    """Evaluation: resize the shorter side (None: already that size), centre crop
    S x S, normalise -> (3, S, S)."""
    if resize_shorter is not None:
        x = fn.resize(x, resize_shorter=float(resize_shorter), antialias=True)
    return fn.crop_mirror_normalize(
        x,
        crop=[size, size],
        crop_pos_x=0.5,
        crop_pos_y=0.5,
        dtype=types.FLOAT,
        output_layout="CHW",
        mean=[255.0 * m for m in mean],
        std=[255.0 * s for s in std],
    )
