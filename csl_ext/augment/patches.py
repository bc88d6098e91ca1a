"""CPC v2 patch grid and per-patch augmentation, in torch for both backends.

Patchify and the per-patch stage run in torch after the image pipeline (DALI or
torchvision): DALI's per-sample operators cannot draw separate parameters for each
of the 49 patches of one image without 49 crop operators per sample, whereas one
vectorised torch pass does it on whatever device the batch lives on.

- [0]: CPC v2, 2019, https://arxiv.org/abs/1905.09272
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .config import PatchConfig

try:  # the C++/CUDA op from csl_ext.ops once it exists; same definition as below
    from csl_ext.ops import patchify as _ops_patchify
except ImportError:  # pragma: no cover - depends on the rest of the package
    _ops_patchify = None

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def patchify(images: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """Overlapping patch grid.

    Args:
        images: (B, C, H, W).
        patch_size: patch side p.
        stride: step s between patches.

    Returns:
        (B, nH, nW, C, p, p) with nH = (H - p) // s + 1, e.g. (B, 7, 7, 3, 8, 8) for
        32/8/4.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if _ops_patchify is not None:
        return _ops_patchify(images, patch_size, stride)
    return images.unfold(2, patch_size, stride).unfold(3, patch_size, stride).permute(0, 2, 3, 1, 4, 5)


def _pick(n: int, p: float, device, generator) -> torch.Tensor:
    """Indices of the patches (of n) that a stage with probability p touches."""
    return torch.nonzero(torch.rand(n, device=device, generator=generator) < p).squeeze(1)


def _uniform(n: int, lo: float, hi: float, device, generator) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, device=device, generator=generator)).view(n, 1, 1, 1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(P, 3, p, p) -> (P, 1, p, p) ITU-R 601 luma."""
    return (x[:, 0:1] * _GRAY[0]).add_(x[:, 1:2], alpha=_GRAY[1]).add_(x[:, 2:3], alpha=_GRAY[2])


def augment_patches(patches: torch.Tensor, cfg: PatchConfig,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Independent augmentation of every patch, on [0, 1] pixels.

    Stages, each with one coin per patch: horizontal flip; brightness b then
    contrast c around the patch's luma mean m (``clamp(b*c*x + b*m*(1-c), 0, 1)``,
    one affine map); grayscale. Each stage gathers only the patches it selects and
    writes them back, so a stage with p = 0.25 costs about a quarter pass.

    Args:
        patches: (B, nH, nW, 3, p, p) float in [0, 1].
        cfg: per-patch probabilities and strengths.
        generator: torch RNG on ``patches.device`` for reproducibility.

    Returns:
        (B, nH, nW, 3, p, p) float in [0, 1], a new contiguous tensor.
    """
    shape = patches.shape
    # one dense copy: unfold's overlapping windows share memory, and we write in place
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
    return x.view(shape)


def normalize_patches(patches: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, nH, nW, 3, p, p) in [0, 1] -> normalised per channel (dim -3)."""
    s = 1.0 / torch.tensor(std, device=patches.device, dtype=patches.dtype).view(3, 1, 1)
    m = -torch.tensor(mean, device=patches.device, dtype=patches.dtype).view(3, 1, 1) * s
    return torch.addcmul(m, patches, s)  # (x - mean) / std in one pass


def cpc_views(images01: torch.Tensor, cfg: PatchConfig, mean, std,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Augmented [0, 1] images (B, 3, H, W) -> normalised, per-patch augmented grid.

    Normalising after patchify equals patchify of the normalised image, since the
    normalisation is per channel.
    """
    patches = patchify(images01, cfg.patch_size, cfg.stride)
    return normalize_patches(augment_patches(patches, cfg, generator), mean, std).contiguous()
