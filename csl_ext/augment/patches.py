"""Per-patch augmentation (CPC v2's patch stage), in torch for both backends.

Patchify and the per-patch stage run in torch after the image pipeline (DALI or
torchvision): DALI's per-sample operators cannot draw separate parameters for each
of the 49 patches of one image without 49 crop operators per sample, whereas one
vectorised torch pass does it on whatever device the batch lives on.

The grid itself is :func:`csl_ext.ops.patchify` (one op, one grid formula:
:func:`csl_ext.ops.patch_grid`).

- [0]: CPC v2, Hénaff et al. 2020, https://arxiv.org/abs/1905.09272 (§4.1)
- [1]: Doersch et al. 2015, https://arxiv.org/abs/1505.05192 (colour dropping)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from csl_ext.ops.patchify import patchify

from .config import PatchConfig

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def _pick(n: int, p: float, device, generator) -> torch.Tensor:
    """Indices of the patches (of n) that a stage with probability p touches."""
    return torch.nonzero(torch.rand(n, device=device, generator=generator) < p).squeeze(1)


def _uniform(n: int, lo: float, hi: float, device, generator) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, device=device, generator=generator)).view(n, 1, 1, 1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(P, 3, p, p) -> (P, 1, p, p) ITU-R 601 luma."""
    return (x[:, 0:1] * _GRAY[0]).add_(x[:, 1:2], alpha=_GRAY[1]).add_(x[:, 2:3], alpha=_GRAY[2])


def augment_patches(
    patches: torch.Tensor,
    cfg: PatchConfig,
    generator: torch.Generator | None = None,
    *,
    fill: Sequence[float] = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """Independent augmentation of every patch, on [0, 1] pixels.

    Stages, each with one coin per patch: horizontal flip; brightness b then
    contrast c around the patch's luma mean m (``clamp(b*c*x + b*m*(1-c), 0, 1)``,
    one affine map); grayscale; colour dropping [0, 1] (keep one channel, drawn
    uniformly; the other two become copies of it, or ``fill`` with
    ``cfg.color_drop_fill="mean"``). Each stage gathers only the
    patches it selects and writes them back, so a stage with p = 0.25 costs about a
    quarter pass.

    Args:
        patches: (B, nH, nW, 3, p, p) float in [0, 1].
        cfg: per-patch probabilities and strengths.
        generator: torch RNG on ``patches.device`` for reproducibility.
        fill: per-channel value of dropped channels in [0, 1] units when
            ``cfg.color_drop_fill == "mean"``; pass the normalisation mean so
            that dropped channels are 0 after normalising.

    Returns:
        (B, nH, nW, 3, p, p) float in [0, 1], a new contiguous tensor.
    """
    shape = patches.shape
    if patches.dim() != 6 or shape[3] != 3:
        raise ValueError(f"patches must be (B, nH, nW, 3, p, p), got shape {tuple(shape)}")
    # one dense copy: the input may be a view with overlapping windows, and we write in place
    x = torch.empty(shape, dtype=torch.float32, device=patches.device).copy_(patches)
    x = x.view(-1, *shape[3:])  # (P, 3, p, p), P = B * nH * nW
    n, dev = x.shape[0], x.device
    if cfg.flip_p > 0:
        i = _pick(n, cfg.flip_p, dev, generator)
        x.index_copy_(0, i, x.index_select(0, i).flip(-1))
    if cfg.jitter_p > 0 and (cfg.brightness > 0 or cfg.contrast > 0):
        i = _pick(n, cfg.jitter_p, dev, generator)
        b = _uniform(len(i), max(0.0, 1 - cfg.brightness), 1 + cfg.brightness, dev, generator)
        c = _uniform(len(i), max(0.0, 1 - cfg.contrast), 1 + cfg.contrast, dev, generator)
        y = x.index_select(0, i)
        w = torch.tensor(_GRAY, device=dev)
        m = (y.mean((-2, -1)) @ w).view(-1, 1, 1, 1)  # luma mean per patch
        y = torch.addcmul(b * m * (1 - c), y, b * c).clamp_(0, 1)
        x.index_copy_(0, i, y)
    if cfg.gray_p > 0:
        i = _pick(n, cfg.gray_p, dev, generator)
        x.index_copy_(0, i, _luma(x.index_select(0, i)).expand(-1, 3, -1, -1))
    if cfg.color_drop_p > 0:
        i = _pick(n, cfg.color_drop_p, dev, generator)
        kept = torch.randint(0, 3, (len(i),), device=dev, generator=generator)
        y = x.index_select(0, i)
        if cfg.color_drop_fill == "kept":  # a grey patch of the kept channel
            y = y[torch.arange(len(i), device=dev), kept].unsqueeze(1).expand(-1, 3, -1, -1)
        else:
            keep = (kept.view(-1, 1) == torch.arange(3, device=dev)).view(-1, 3, 1, 1)  # (P', 3, 1, 1)
            y = torch.where(keep, y, torch.tensor(fill, dtype=x.dtype, device=dev).view(1, 3, 1, 1))
        x.index_copy_(0, i, y)
    return x.view(shape)


def normalize_patches(patches: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, nH, nW, 3, p, p) in [0, 1] -> normalised per channel (dim -3)."""
    s = 1.0 / torch.tensor(std, device=patches.device, dtype=patches.dtype).view(3, 1, 1)
    m = -torch.tensor(mean, device=patches.device, dtype=patches.dtype).view(3, 1, 1) * s
    return torch.addcmul(m, patches, s)  # (x - mean) / std in one pass


def cpc_views(
    images01: torch.Tensor, cfg: PatchConfig, mean, std, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Augmented [0, 1] images (B, 3, H, W) -> normalised, per-patch augmented grid.

    Normalising after patchify equals patchify of the normalised image, since the
    normalisation is per channel.
    """
    patches = patchify(images01, cfg.patch_size, cfg.stride)
    augmented = augment_patches(patches, cfg, generator, fill=mean)
    return normalize_patches(augmented, mean, std).contiguous()
