"""Each random stage fires with its configured probability, on both backends.

One stage is switched on at a time on [0, 1] outputs (mean 0, std 1), 1536 samples
of 16 x 16: the standard error of a fraction is <= 0.013, tolerances are ~4 of them.
"""

import numpy as np
import pytest
import torch

from csl_ext.augment import Augmentation, ColorJitter, MethodConfig, ViewConfig, method_config

N = 1536
OFF = dict(crop_scale=None, flip_p=0.0)  # every other stage off


def run_stage(backend, images, view: ViewConfig, seed=0):
    """(inputs, outputs) as float (N, 3, S, S) in [0, 1], aligned sample by sample."""
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    cfg = MethodConfig(
        method="simclr", image_size=images.shape[1], views=(view,), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
    )
    data = np.tile(images, (N // len(images), 1, 1, 1))
    nw = 0 if backend == "torchvision" else 2
    outs, labels = [], []
    for v, y in Augmentation(cfg, backend).loader(
        data, np.arange(len(data)), batch_size=256, num_workers=nw, seed=seed, device="cpu"
    ):
        outs.append(v)
        labels.append(y)
    x = torch.from_numpy(data[torch.cat(labels).numpy()]).permute(0, 3, 1, 2).float() / 255
    return x, torch.cat(outs)


def changed(x, y, tol=1.5 / 255):
    return (x - y).abs().mean((1, 2, 3)) > tol


BACKENDS = ["dali", "torchvision"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_grayscale_fraction(backend, images16):
    x, y = run_stage(backend, images16, ViewConfig(**OFF, gray_p=0.2))
    spread = (y.amax(1) - y.amin(1)).amax((1, 2))  # max channel disagreement per image
    gray = spread <= 3 / 255
    assert (x.amax(1) - x.amin(1)).amax((1, 2)).min() > 20 / 255  # inputs are colourful
    assert abs(gray.float().mean().item() - 0.2) < 0.04
    assert not changed(x[~gray], y[~gray]).any()  # the others pass through


@pytest.mark.parametrize("backend", BACKENDS)
def test_flip_fraction(backend, images16):
    x, y = run_stage(backend, images16, ViewConfig(crop_scale=None, flip_p=0.5))
    same = (x - y).abs().amax((1, 2, 3)) < 1e-6
    mirrored = (x.flip(-1) - y).abs().amax((1, 2, 3)) < 1e-6
    assert bool((same ^ mirrored).all())  # every output is one or the other, exactly
    assert abs(mirrored.float().mean().item() - 0.5) < 0.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_colour_jitter_fraction(backend, images16):
    # brightness factor ~ U(0.2, 1.8): below 1.5/255 mean change only ~2% of the time
    x, y = run_stage(backend, images16, ViewConfig(**OFF, jitter=ColorJitter(brightness=0.8), jitter_p=0.8))
    frac = changed(x, y).float().mean().item()
    assert 0.8 * 0.96 - 0.04 < frac < 0.8 + 0.04


@pytest.mark.parametrize("backend", BACKENDS)
def test_blur_fraction(backend, images16):
    # sigma >= 1 so that every blurred image really changes
    x, y = run_stage(backend, images16, ViewConfig(**OFF, blur_p=0.5, blur_kernel=5, blur_sigma=(1.0, 2.0)))
    assert abs(changed(x, y).float().mean().item() - 0.5) < 0.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_solarize_fraction_and_values(backend, images16):
    x, y = run_stage(backend, images16, ViewConfig(**OFF, solarize_p=0.2))
    sol = changed(x, y, tol=1e-6)
    assert abs(sol.float().mean().item() - 0.2) < 0.04
    # solarised pixels: >= 128 inverted, the rest kept
    xs = (x[sol] * 255).round()
    expect = torch.where(xs >= 128, 255 - xs, xs)
    torch.testing.assert_close((y[sol] * 255).round(), expect, atol=0, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_translation_is_a_crop_of_the_reflection_padded_image(backend, images16):
    pad = 2
    x, y = run_stage(backend, images16[:8], ViewConfig(crop_scale=None, flip_p=0.0, translate=pad))
    xp = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    s = x.shape[-1]
    offsets = []
    for i in range(len(x)):
        hits = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.allclose(xp[i, :, dy : dy + s, dx : dx + s], y[i], atol=1e-6)
        ]
        assert hits, f"sample {i} is no crop of the reflection-padded input"
        offsets.append(hits[0])
    counts = np.bincount([dy * (2 * pad + 1) + dx for dy, dx in offsets], minlength=25)
    assert (counts > 0).all()  # all 25 offsets reachable, including the corners
    assert counts.max() < 3 * len(offsets) / 25


@pytest.mark.parametrize("backend", BACKENDS)
def test_translation_probability(backend, images16):
    # amdim-public applies its translation with p 0.8; offset (pad, pad) is the identity (1 in 25)
    x, y = run_stage(backend, images16, ViewConfig(crop_scale=None, flip_p=0.0, translate=2, translate_p=0.8))
    moved = (x - y).abs().amax((1, 2, 3)) > 1e-6
    assert abs(moved.float().mean().item() - 0.8 * 24 / 25) < 0.04


def run_views(backend, images, cfg: MethodConfig, seed=0):
    """(inputs, [view_0, view_1]) as float (N, 3, S, S) in [0, 1] for a [0, 1] config."""
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    data = np.tile(images, (N // len(images), 1, 1, 1))
    nw = 0 if backend == "torchvision" else 2
    outs, labels = [[], []], []
    for v0, v1, y in Augmentation(cfg, backend).loader(
        data, np.arange(len(data)), batch_size=256, num_workers=nw, seed=seed, device="cpu"
    ):
        outs[0].append(v0)
        outs[1].append(v1)
        labels.append(y)
    x = torch.from_numpy(data[torch.cat(labels).numpy()]).permute(0, 3, 1, 2).float() / 255
    return x, [torch.cat(o) for o in outs]


@pytest.mark.parametrize("backend", BACKENDS)
def test_shared_flip_flips_both_views_together(backend, images16):
    view = ViewConfig(crop_scale=None, flip_p=0.0)
    cfg = MethodConfig("amdim", 16, (view, view), (0.0,) * 3, (1.0,) * 3, shared_flip_p=0.5)
    x, (v0, v1) = run_views(backend, images16, cfg)
    assert torch.equal(v0, v1)  # one flip per image
    mirrored = (x.flip(-1) - v0).abs().amax((1, 2, 3)) < 1e-6
    same = (x - v0).abs().amax((1, 2, 3)) < 1e-6
    assert bool((mirrored ^ same).all()) and abs(mirrored.float().mean().item() - 0.5) < 0.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_amdim_views_share_their_flip(backend, images16):
    # the AMDIM recipe with its random stages off except the flip: the two views are equal
    # (independent flips per view, the old behaviour, make half of them differ)
    cfg = method_config("amdim", 16, mean=(0.0,) * 3, std=(1.0,) * 3, translate_p=0.0, jitter_p=0.0, gray_p=0.0)
    x, (v0, v1) = run_views(backend, images16, cfg)
    assert torch.equal(v0, v1)
    assert 0.4 < ((x.flip(-1) - v0).abs().amax((1, 2, 3)) < 1e-6).float().mean() < 0.6
