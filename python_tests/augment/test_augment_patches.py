"""CPC v2 patch grid and per-patch augmentation."""

import dataclasses

import numpy as np
import pytest
import torch

from csl_ext.augment import Augmentation, make_augmentation, patchify
from csl_ext.augment.config import PatchConfig
from csl_ext.augment.patches import augment_patches

BACKENDS = ["torchvision", "dali"]


def nw(backend):  # no worker processes for torchvision (fast start), one DALI thread
    return 0 if backend == "torchvision" else 1


def test_patchify_matches_unfold_definition():
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 8, 4)
    assert p.shape == (2, 7, 7, 3, 8, 8)
    # patch (i, j) is the window at rows 4i.., cols 4j..
    torch.testing.assert_close(p[1, 2, 5], x[1, :, 8:16, 20:28])


def test_patchify_rejects_bad_rank():
    with pytest.raises(ValueError, match="images"):
        patchify(torch.zeros(3, 32, 32), 8, 4)


def test_per_patch_grayscale_fraction():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 7, 7, 3, 8, 8, generator=g)
    cfg = PatchConfig(8, 4, flip_p=0.0, jitter_p=0.0, gray_p=0.3)
    y = augment_patches(x, cfg, g)
    gray = (y.amax(3) - y.amin(3)).amax((-2, -1)) < 1e-6  # (B, nH, nW)
    assert abs(gray.float().mean().item() - 0.3) < 0.03  # 1960 patches, sd ~ 0.01
    # non-gray patches are untouched
    torch.testing.assert_close(y[~gray], x[~gray])


def test_per_patch_flip_is_independent_per_patch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 7, 7, 3, 8, 8, generator=g)
    y = augment_patches(x, PatchConfig(8, 4, flip_p=0.5, jitter_p=0.0, gray_p=0.0), g)
    flipped = (y == x.flip(-1)).flatten(3).all(-1)
    same = (y == x).flatten(3).all(-1)
    assert bool((flipped | same).all())
    assert abs(flipped.float().mean().item() - 0.5) < 0.05
    assert bool(flipped.any(dim=(1, 2)).all() & (~flipped).any(dim=(1, 2)).all())  # mixed within images


@pytest.mark.parametrize("backend", BACKENDS)
def test_cpc_grid_equals_patchify_of_the_augmented_image(backend, images32):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    # per-patch stage off: the grid must be exactly patchify(image)
    cfg = make_augmentation("cpc_v2", 32, backend=backend).config
    cfg = dataclasses.replace(cfg, patch=dataclasses.replace(cfg.patch, flip_p=0.0, jitter_p=0.0,
                                                             gray_p=0.0))
    aug = Augmentation(cfg, backend)
    grid, labels, img = next(iter(aug.loader(images32, np.arange(64), batch_size=16, num_workers=nw(backend),
                                             return_images=True, device="cpu")))
    assert grid.shape == (16, 7, 7, 3, 8, 8) and img.shape == (16, 3, 32, 32)
    torch.testing.assert_close(grid, patchify(img, 8, 4), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cpc_per_patch_augmentation_changes_patches(backend, images32):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    aug = make_augmentation("cpc_v2", 32, backend=backend)
    grid, _, img = next(iter(aug.loader(images32, np.arange(64), batch_size=16,
                                        num_workers=nw(backend),
                                        return_images=True, device="cpu")))
    plain = patchify(img, 8, 4)
    changed = ~torch.isclose(grid, plain, atol=1e-4).flatten(3).all(-1)  # (B, 7, 7)
    # flip 0.5, jitter 0.8, gray 0.25 per patch: most patches change, not all
    assert 0.5 < changed.float().mean().item() < 1.0
