"""CPC v2 per-patch augmentation, the CPC grid of both backends, YADIM's patch stage."""

import dataclasses

import numpy as np
import pytest
import torch

import csl_ext
from csl_ext.augment import Augmentation, NormalisedPatchAugment, PatchStage, make_augmentation, yadim_patch_stage
from csl_ext.augment.config import CIFAR_MEAN, CIFAR_STD, PatchConfig
from csl_ext.augment.patch_stage import yadim_patch_config
from csl_ext.augment.patches import augment_patches
from csl_ext.ops import patchify

BACKENDS = ["torchvision", "dali"]


def nw(backend):  # no worker processes for torchvision (fast start), one DALI thread
    return 0 if backend == "torchvision" else 1


def test_per_patch_grayscale_fraction():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 7, 7, 3, 8, 8, generator=g)
    cfg = PatchConfig(8, 4, flip_p=0.0, color_drop_p=0.0, jitter_p=0.0, gray_p=0.3)
    y = augment_patches(x, cfg, g)
    gray = (y.amax(3) - y.amin(3)).amax((-2, -1)) < 1e-6  # (B, nH, nW)
    assert abs(gray.float().mean().item() - 0.3) < 0.03  # 1960 patches, sd ~ 0.01
    # non-gray patches are untouched
    torch.testing.assert_close(y[~gray], x[~gray])


def test_per_patch_flip_is_independent_per_patch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 7, 7, 3, 8, 8, generator=g)
    y = augment_patches(x, PatchConfig(8, 4, flip_p=0.5, color_drop_p=0.0, jitter_p=0.0), g)
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
    cfg = dataclasses.replace(cfg, patch=dataclasses.replace(cfg.patch, flip_p=0.0, color_drop_p=0.0, jitter_p=0.0))
    aug = Augmentation(cfg, backend)
    grid, labels, img = next(
        iter(
            aug.loader(
                images32, np.arange(64), batch_size=16, num_workers=nw(backend), return_images=True, device="cpu"
            )
        )
    )
    assert grid.shape == (16, 7, 7, 3, 8, 8) and img.shape == (16, 3, 32, 32)
    torch.testing.assert_close(grid, patchify(img, 8, 4), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cpc_per_patch_augmentation_changes_patches(backend, images32):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    aug = make_augmentation("cpc_v2", 32, backend=backend)
    grid, _, img = next(
        iter(
            aug.loader(
                images32, np.arange(64), batch_size=16, num_workers=nw(backend), return_images=True, device="cpu"
            )
        )
    )
    mean, std = torch.tensor(aug.config.mean).view(3, 1, 1), torch.tensor(aug.config.std).view(3, 1, 1)
    plain, pixels = patchify(img, 8, 4) * std + mean, grid * std + mean  # [0, 1] pixels
    # colour dropping in every patch: each is a grey patch of one channel
    torch.testing.assert_close(pixels, pixels[..., :1, :, :].expand_as(pixels), atol=1e-5, rtol=0)
    # so every patch that had colour (not greyed by the image stage's grayscale) changed
    coloured = ~torch.isclose(plain, plain[..., :1, :, :], atol=1e-4).flatten(3).all(-1)  # (B, 7, 7)
    changed = ~torch.isclose(pixels, plain, atol=1e-4).flatten(3).all(-1)
    assert coloured.float().mean().item() > 0.5 and bool(changed[coloured].all())


def test_cpc_v2_defaults_are_colour_dropping_jitter_and_flip():
    patch = make_augmentation("cpc_v2", 32, backend="torchvision").config.patch
    assert (patch.color_drop_p, patch.flip_p, patch.jitter_p, patch.gray_p) == (1.0, 0.5, 0.8, 0.0)
    assert patch.color_drop_fill == "kept"


def test_cpc_v2_jitters_each_patch_of_an_image_on_its_own():
    # one grey image (value 0.5 everywhere): the image carries no brightness cue of its own
    patches = torch.full((4, 7, 7, 3, 8, 8), 0.5)
    cfg = make_augmentation("cpc_v2", 32, backend="torchvision").config.patch
    y = augment_patches(patches, cfg, torch.Generator().manual_seed(0))
    means = y.mean((3, 4, 5))  # (B, 7, 7) brightness of each patch
    jittered = (means - 0.5).abs() > 1e-4
    assert abs(jittered.float().mean().item() - cfg.jitter_p) < 0.06  # 196 patches, sd ~0.03
    # the 49 patches of one image get their own draws, so their brightness differs
    assert bool((means.flatten(1).std(1) > 0.05).all())


def test_colour_dropping_copies_the_kept_channel():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 7, 7, 3, 8, 8, generator=g)
    y = augment_patches(x, PatchConfig(8, 4, flip_p=0.0, color_drop_p=1.0, jitter_p=0.0), g, fill=(0.1, 0.2, 0.3))
    assert bool((y == y[..., :1, :, :]).all())  # three equal channels: a grey patch
    source = (y[..., :1, :, :] == x).flatten(4).all(-1)  # (B, 7, 7, 3): the channel copied
    assert bool((source.sum(-1) == 1).all())
    # the kept channel is uniform over R, G, B (1470 patches, sd of a fraction ~0.012)
    fractions = source.flatten(0, 2).float().mean(0)
    assert bool(((fractions - 1 / 3).abs() < 0.05).all()), fractions


def test_colour_dropping_with_the_mean_fill_keeps_exactly_one_channel():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 7, 7, 3, 8, 8, generator=g)
    fill = (0.1, 0.2, 0.3)
    cfg = PatchConfig(8, 4, flip_p=0.0, color_drop_p=1.0, jitter_p=0.0, color_drop_fill="mean")
    y = augment_patches(x, cfg, g, fill=fill)
    kept = (y == x).flatten(4).all(-1)  # (B, 7, 7, 3): channel passed through
    filled = (y == torch.tensor(fill).view(3, 1, 1)).flatten(4).all(-1)
    assert bool((kept.sum(-1) == 1).all()) and bool((kept ^ filled).all())
    # the kept channel is uniform over R, G, B (1470 patches, sd of a fraction ~0.012)
    fractions = kept.flatten(0, 2).float().mean(0)
    assert bool(((fractions - 1 / 3).abs() < 0.05).all()), fractions


def test_colour_dropping_probability():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 7, 7, 3, 8, 8, generator=g)
    y = augment_patches(x, PatchConfig(8, 4, flip_p=0.0, color_drop_p=0.4, jitter_p=0.0), g)
    dropped = ~(y == x).flatten(3).all(-1)
    assert abs(dropped.float().mean().item() - 0.4) < 0.04


def test_augment_patches_rejects_a_non_grid():
    with pytest.raises(ValueError, match="patches"):
        augment_patches(torch.rand(2, 3, 8, 8), PatchConfig(8, 4))


@pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")
def test_patch_stage_averages_overlaps():
    identity = PatchStage(8, 4, lambda p: p)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(identity(x), x)  # unchanged patches: the image comes back
    # a patch-wise constant makes each pixel the mean of the patches that cover it
    stage = PatchStage(4, 2, lambda p: torch.ones_like(p) * torch.arange(p.shape[0]).view(-1, 1, 1, 1))
    out = stage(torch.zeros(1, 1, 6, 6))
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 2, 2] == (0 + 1 + 2 + 3) / 4  # a 2x2 grid


@pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")
@pytest.mark.parametrize("reading", ["patches", "image"])
def test_yadim_readings(reading):
    config = yadim_patch_config(32, reading)
    assert config.grid(32) == {"patches": 7, "image": 1}[reading]
    assert (config.flip_p, config.jitter_p, config.gray_p, config.color_drop_p) == (0.5, 0.8, 0.25, 0.0)
    flips_only = dataclasses.replace(config, jitter_p=0.0, gray_p=0.0)
    stage = PatchStage(config.patch_size, config.stride, NormalisedPatchAugment(flips_only, CIFAR_MEAN, CIFAR_STD))
    x = (torch.rand(64, 3, 32, 32) - torch.tensor(CIFAR_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR_STD).view(3, 1, 1)
    torch.manual_seed(0)
    out = stage(x)
    mirrored = (out - x.flip(-1)).abs().amax((1, 2, 3)) < 1e-4
    same = (out - x).abs().amax((1, 2, 3)) < 1e-4
    if reading == "image":  # one patch, the image: every output is the input or its mirror image
        assert bool((mirrored ^ same).all()) and 0.3 < mirrored.float().mean() < 0.7
    else:  # 49 patches flip on their own: no output is either
        assert not (mirrored | same).any()


def test_yadim_patch_stage_rejects_an_unknown_reading():
    with pytest.raises(ValueError, match="reading"):
        yadim_patch_stage(32, CIFAR_MEAN, CIFAR_STD, reading="tiles")


@pytest.mark.parametrize("patch_stage, size", [(True, 8), ("patches", 8), ("image", 32)])
def test_yadim_method_builds_the_reading_it_is_given(patch_stage, size):
    from csl_ext.methods import build_method

    method = build_method("yadim", image_size=32, patch_stage=patch_stage)
    assert isinstance(method.patch_stage, PatchStage) and method.patch_stage.patch_size == size
    assert build_method("yadim", image_size=32, patch_stage=False).patch_stage is None
