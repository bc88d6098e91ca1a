"""A small batched augmentation (part 1 of the framework) used by the trainer:
uint8 images (B, 3, H, W) -> a tuple of float views, on any device.

Every random draw comes from a torch.Generator seeded from (seed, epoch,
step, rank), so a resumed run makes exactly the views an uninterrupted run
would have made. The recipes follow the papers at small scale: random
resized crop, horizontal flip, colour jitter (brightness, contrast,
saturation, hue), random grayscale; blur is left out at 32 / 64 px as in
SimCLR's CIFAR setting. csl_ext.augment (DALI pipelines with torchvision
twins) is the full-featured counterpart.

- [0]: SimCLR, Chen et al. 2020, Appendix A, https://arxiv.org/abs/2002.05709
- [1]: AMDIM, Bachman et al. 2019, Sec. 3 (flip, crop, jitter, grayscale), https://arxiv.org/abs/1906.00910
"""
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class ViewRecipe:
    """One view's random transformations.

    Attributes:
        crop_scale: random resized crop area range (None: no crop).
        crop_ratio: aspect ratio range of the crop.
        flip_p: horizontal flip probability.
        jitter: (brightness, contrast, saturation, hue) strengths.
        jitter_p: probability of applying the colour jitter.
        gray_p: probability of converting to grayscale.
    """

    crop_scale: tuple[float, float] | None = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2


RECIPES = {
    "simclr": ViewRecipe(crop_scale=(0.08, 1.0)),
    "moco_v2": ViewRecipe(crop_scale=(0.2, 1.0)),
    "byol": ViewRecipe(crop_scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1)),
    # AMDIM's recipe: milder crops, jitter and grayscale [1]
    "amdim": ViewRecipe(crop_scale=(0.3, 1.0), jitter=(0.4, 0.4, 0.4, 0.125), jitter_p=0.8, gray_p=0.25),
    "cpc_v2": ViewRecipe(crop_scale=(0.3, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, gray_p=0.25),
    "yadim": ViewRecipe(crop_scale=(0.3, 1.0), jitter=(0.4, 0.4, 0.4, 0.125), jitter_p=0.8, gray_p=0.25),
    "eval": ViewRecipe(crop_scale=None, flip_p=0.0, jitter_p=0.0, gray_p=0.0),
}


def view_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """A 63-bit seed that depends on all four numbers."""
    return int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _uniform(g, n, lo, hi, device):
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _gray(x):
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def _hue_shift(x, shift):
    """Rotates the hue of RGB x (B, 3, H, W) by shift (B,) turns, via a
    rotation about the grey axis (YIQ-style), cheap and differentiable."""
    theta = (shift * 2 * math.pi).view(-1, 1, 1)
    c, s = torch.cos(theta), torch.sin(theta)
    k = 1 / 3
    sq = math.sqrt(1 / 3)
    # Rodrigues rotation about (1, 1, 1) / sqrt(3): B x 3 x 3
    m = torch.stack([
        torch.cat([c + (1 - c) * k, (1 - c) * k - s * sq, (1 - c) * k + s * sq], -1),
        torch.cat([(1 - c) * k + s * sq, c + (1 - c) * k, (1 - c) * k - s * sq], -1),
        torch.cat([(1 - c) * k - s * sq, (1 - c) * k + s * sq, c + (1 - c) * k], -1),
    ], 1).view(-1, 3, 3)
    return torch.einsum("bij,bjhw->bihw", m, x)


def random_view(x: torch.Tensor, recipe: ViewRecipe, size: int, g: torch.Generator) -> torch.Tensor:
    """x: float (B, 3, H, W) in [0, 1] -> one random view (B, 3, size, size) in [0, 1]."""
    b, dev = x.shape[0], x.device
    # crop + flip as one affine sampling grid (output coords -> input coords)
    if recipe.crop_scale is not None:
        area = _uniform(g, b, *recipe.crop_scale, dev)
        log_r = _uniform(g, b, math.log(recipe.crop_ratio[0]), math.log(recipe.crop_ratio[1]), dev)
        ratio = torch.exp(log_r)
        w = torch.sqrt(area * ratio).clamp(max=1.0)  # fraction of the width
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(b, generator=g, device=dev) * 2 - 1) * (1 - w)
        cy = (torch.rand(b, generator=g, device=dev) * 2 - 1) * (1 - h)
    else:
        w = h = torch.ones(b, device=dev)
        cx = cy = torch.zeros(b, device=dev)
    flip = torch.where(torch.rand(b, generator=g, device=dev) < recipe.flip_p, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # colour jitter (fixed order b, c, s, h; torchvision randomises it)
    if recipe.jitter_p > 0:
        bj, cj, sj, hj = recipe.jitter
        on = (torch.rand(b, generator=g, device=dev) < recipe.jitter_p).float().view(-1, 1, 1, 1)
        fb = _uniform(g, b, 1 - bj, 1 + bj, dev).view(-1, 1, 1, 1)
        fc = _uniform(g, b, 1 - cj, 1 + cj, dev).view(-1, 1, 1, 1)
        fs = _uniform(g, b, 1 - sj, 1 + sj, dev).view(-1, 1, 1, 1)
        fh = _uniform(g, b, -hj, hj, dev)
        y = (x * fb).clamp(0, 1)
        mean = _gray(y).mean((1, 2, 3), keepdim=True)
        y = ((y - mean) * fc + mean).clamp(0, 1)
        gy = _gray(y)
        y = ((y - gy) * fs + gy).clamp(0, 1)
        y = _hue_shift(y, fh).clamp(0, 1)
        x = on * y + (1 - on) * x
    if recipe.gray_p > 0:
        on = (torch.rand(b, generator=g, device=dev) < recipe.gray_p).float().view(-1, 1, 1, 1)
        x = on * _gray(x) + (1 - on) * x
    return x


def normalize(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def to_input(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the normalised float input an encoder sees at
    evaluation time (optionally resized to size)."""
    x = images.float() / 255
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return normalize(x)


class BatchViews:
    """Callable: uint8 images (B, 3, H, W) + generator -> num_views normalised views.

    Args:
        recipe: a RECIPES key (the method's augmentation) or a ViewRecipe;
            a list gives one recipe per view.
        size: output side (default: the input's).
        num_views: number of views.
        **overrides: ViewRecipe fields to replace, e.g. crop_scale=(0.3, 1).

    Example:
        >>> views = BatchViews("simclr", num_views=2)
        >>> x1, x2 = views(uint8_images, torch.Generator().manual_seed(0))
    """

    def __init__(self, recipe="simclr", size: int | None = None, num_views: int = 2, **overrides):
        if isinstance(recipe, str):
            if recipe not in RECIPES:
                raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
            recipe = RECIPES[recipe]
        recipes = list(recipe) if isinstance(recipe, (list, tuple)) else [recipe] * num_views
        self.recipes = [replace(r, **overrides) for r in recipes]
        self.size, self.num_views = size, len(self.recipes)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        size = self.size or x.shape[-1]
        return tuple(normalize(random_view(x, r, size, generator)) for r in self.recipes)
