"""AMDIMEncoder and the CPC patch encoder: output shapes at 32, 64, 128 px."""

import pytest
import torch
import torchvision

import csl_ext
from csl_ext.encoders import (
    AMDIM_PRESETS,
    AMDIMEncoder,
    CPCResNet,
    PatchEncoder,
    amdim_encoder,
    layer_norm2d,
)

SIZES = [32, 64, 128]


@pytest.mark.parametrize("use_bn", [False, True])
@pytest.mark.parametrize("size", SIZES)
def test_amdim_maps(size, use_bn):
    encoder = AMDIMEncoder(ndf=4, n_rkhs=12, depth=1, image_size=size, use_bn=use_bn)
    maps = encoder(torch.randn(2, 3, size, size))
    assert [tuple(m.shape) for m in maps] == [(2, 12, 7, 7), (2, 12, 5, 5), (2, 12, 1, 1)]
    sum(m.sum() for m in maps).backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_amdim_batchnorm_only_on_the_returned_embeddings_by_default():
    encoder = AMDIMEncoder(ndf=4, n_rkhs=16, depth=1)
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms == [encoder.to_1x1[-1], encoder.head_7x7.out_norm, encoder.head_5x5.out_norm]


@pytest.mark.parametrize("preset", sorted(AMDIM_PRESETS))
def test_presets(preset):
    config = AMDIM_PRESETS[preset]
    assert config.image_size == {"cifar10": 32, "stl10": 64, "imagenet": 128}[preset]
    # The real widths are too big for a unit test; the preset's geometry is kept.
    encoder = amdim_encoder(preset, ndf=4, n_rkhs=8, depth=1)
    maps = encoder(torch.randn(2, 3, config.image_size, config.image_size))  # BN on the embeddings: B >= 2
    assert [m.shape[-1] for m in maps] == [7, 5, 1]


def test_amdim_bad_arguments():
    with pytest.raises(ValueError, match="image_size must be 32, 64 or 128"):
        AMDIMEncoder(image_size=96)
    with pytest.raises(ValueError, match="ndf must be an int >= 1"):
        AMDIMEncoder(ndf=0)
    with pytest.raises(ValueError, match="preset must be one of"):
        amdim_encoder("mnist")
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, 32, 32\)"):
        AMDIMEncoder(ndf=4, n_rkhs=8, depth=1)(torch.randn(1, 3, 64, 64))


@pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")
@pytest.mark.parametrize("size,patch,stride", [(32, 8, 4), (64, 16, 8), (128, 32, 16)])
def test_patch_encoder_grid(size, patch, stride):
    encoder = PatchEncoder(CPCResNet((1, 1), width=4), patch, stride)
    grid = encoder(torch.randn(2, 3, size, size))
    assert grid.shape == (2, 32, 7, 7)  # D = 4 * 4 * 2


@pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")
def test_patch_encoder_matches_per_patch_encoding_and_hook():
    backbone = CPCResNet((1,), width=2)
    seen = []
    encoder = PatchEncoder(backbone, 8, 4, patch_transform=lambda p: seen.append(p.shape) or p * 2)
    images = torch.randn(2, 3, 16, 16)
    grid = encoder(images)  # 3x3 grid
    assert seen == [(18, 3, 8, 8)]
    patch = images[1:2, :, 4:12, 8:16] * 2  # image 1, grid cell (1, 2)
    torch.testing.assert_close(grid[1, :, 1, 2], backbone(patch)[0])


@pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")
def test_patch_encoder_accepts_torchvision_resnet():
    resnet = torchvision.models.resnet18(num_classes=10, norm_layer=layer_norm2d)
    grid = PatchEncoder(resnet, 16, 8)(torch.randn(1, 3, 32, 32))
    assert grid.shape == (1, 512, 3, 3)


def test_cpc_resnet_uses_no_batchnorm():
    net = CPCResNet((1, 2), width=4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert net(torch.randn(3, 3, 9, 9)).shape == (3, net.out_dim) == (3, 32)
    with pytest.raises(ValueError, match="blocks must be"):
        CPCResNet(())
