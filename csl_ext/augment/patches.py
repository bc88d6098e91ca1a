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


def _coin(shape, p: float, device, generator) -> torch.Tensor:
    return torch.rand(shape, device=device, generator=generator) < p


def _uniform(shape, lo: float, hi: float, device, generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, device=device, generator=generator)


def augment_patches(patches: torch.Tensor, cfg: PatchConfig,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Independent augmentation of every patch, on [0, 1] pixels.

    Args:
        patches: (B, nH, nW, 3, p, p) float in [0, 1].
        cfg: per-patch probabilities and strengths.
        generator: torch RNG on ``patches.device`` for reproducibility.

    Returns:
        (B, nH, nW, 3, p, p) float in [0, 1], a new tensor.
    """
    x = patches.float().clone()  # unfold output is a view with overlapping memory
    shape = x.shape[:3] + (1, 1, 1)  # one draw per patch
    dev = x.device
    if cfg.flip_p > 0:
        flip = _coin(shape, cfg.flip_p, dev, generator)
        x = torch.where(flip, x.flip(-1), x)
    if cfg.jitter_p > 0 and (cfg.brightness > 0 or cfg.contrast > 0):
        on = _coin(shape, cfg.jitter_p, dev, generator)
        b = _uniform(shape, max(0.0, 1 - cfg.brightness), 1 + cfg.brightness, dev, generator)
        c = _uniform(shape, max(0.0, 1 - cfg.contrast), 1 + cfg.contrast, dev, generator)
        y = (x * b).clamp_(0, 1)
        w = torch.tensor(_GRAY, device=dev).view(3, 1, 1)
        mean = (y * w).sum(-3, keepdim=True).mean((-2, -1), keepdim=True)  # contrast pivots on luma mean
        y = ((y - mean) * c + mean).clamp_(0, 1)
        x = torch.where(on, y, x)
    if cfg.gray_p > 0:
        gray = _coin(shape, cfg.gray_p, dev, generator)
        w = torch.tensor(_GRAY, device=dev).view(3, 1, 1)
        g = (x * w).sum(-3, keepdim=True).expand_as(x)
        x = torch.where(gray, g, x)
    return x


def normalize_patches(patches: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, nH, nW, 3, p, p) in [0, 1] -> normalised per channel (dim -3)."""
    m = torch.tensor(mean, device=patches.device, dtype=patches.dtype).view(3, 1, 1)
    s = torch.tensor(std, device=patches.device, dtype=patches.dtype).view(3, 1, 1)
    return (patches - m) / s


def cpc_views(images01: torch.Tensor, cfg: PatchConfig, mean, std,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Augmented [0, 1] images (B, 3, H, W) -> normalised, per-patch augmented grid.

    Normalising after patchify equals patchify of the normalised image, since the
    normalisation is per channel.
    """
    patches = patchify(images01, cfg.patch_size, cfg.stride)
    return normalize_patches(augment_patches(patches, cfg, generator), mean, std).contiguous()
