"""The encoder registry: every entry builds at a small width and returns the
documented features and maps at 32 and 64 px; widths, stems and norms do
what they say; bad arguments fail with a message naming them."""

import pytest
import torch
from torch import nn
from torchvision.models import resnet as tv

from csl_ext.encoders import (
    ENCODERS,
    TABLE1_ENCODERS,
    build_encoder,
    build_map_encoder,
    build_patch_encoder,
)
from csl_ext.encoders.resnet import ARCHS

WIDTH = 0.0625  # 4 first-stage channels: seconds on a CPU
EMBED = 12
TORCHVISION = sorted(ARCHS)


def _small(name, size, **kwargs):
    if name == "amdim":
        return build_encoder(name, width=WIDTH, image_size=size, depth=1, **kwargs)
    if name == "cpc_resnet":
        return build_encoder(name, width=WIDTH, image_size=size, blocks=(1, 1, 1), **kwargs)
    return build_encoder(name, width=WIDTH, **kwargs)


def test_registry_names_table1_and_the_method_encoders():
    assert set(TABLE1_ENCODERS) <= set(ENCODERS)
    assert {"resnet10", "amdim", "cpc_resnet"} <= set(ENCODERS)
    assert len(TABLE1_ENCODERS) == 9


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_entries_features_and_maps(name, size):
    torch.manual_seed(0)
    enc = _small(name, size, embed_dim=EMBED)
    x = torch.randn(2, 3, size, size)
    feats = enc(x)
    assert feats.shape == (2, enc.feature_dim)
    expansion = ARCHS[name].block.expansion
    assert enc.feature_dim == 8 * 4 * expansion  # width 4 x 8 x expansion
    feats2, maps = enc(x, return_maps=True)
    torch.testing.assert_close(feats2, feats)
    # CIFAR stem: strides 2, 4, 8 for layer2..layer4, all embedded to D
    assert [tuple(m.shape) for m in maps] == [(2, EMBED, size // s, size // s) for s in (2, 4, 8)]
    raw = _small(name, size)  # no embedding: the stages' own channels
    _, raw_maps = raw(x, return_maps=True)
    assert [m.shape[1] for m in raw_maps] == [c * 4 * expansion for c in (2, 4, 8)] == raw.map_channels


@pytest.mark.parametrize("size", [32, 64])
def test_amdim_entry(size):
    enc = _small("amdim", size)
    feats, maps = enc(torch.randn(2, 3, size, size), return_maps=True)
    d = round((1024 if size == 32 else 1536) * WIDTH)  # the preset's n_rkhs, scaled
    assert feats.shape == (2, d) == (2, enc.feature_dim)
    assert [tuple(m.shape) for m in maps] == [(2, d, 7, 7), (2, d, 5, 5), (2, d, 1, 1)]
    torch.testing.assert_close(feats, maps[-1].flatten(1))


@pytest.mark.parametrize("size", [32, 64])
def test_cpc_entry_runs_per_patch_with_layer_norm(size):
    enc = _small("cpc_resnet", size, embed_dim=EMBED)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in enc.modules())  # LayerNorm
    x = torch.randn(2, 3, size, size)
    feats, maps = enc(x, return_maps=True)
    assert feats.shape == (2, 4 * 4 * 4)  # 4 channels x expansion 4 x 2^(3 - 1)
    assert [tuple(m.shape) for m in maps] == [(2, EMBED, 7, 7)] * 3
    torch.testing.assert_close(enc(x), feats)
    # patches are encoded independently: changing one image's pixels leaves the other's features alone
    x2 = x.clone()
    x2[1] += 1.0
    torch.testing.assert_close(enc(x2)[0], feats[0])


def test_width_multiplier_and_torchvision_architecture_at_width_one():
    # width 1 is torchvision's own architecture: same parameter count as the classifier-less model
    for name in ("resnet50", "resnext50_32x4d", "wide_resnet50_2"):
        with torch.device("meta"):  # shapes only: no memory, no initialisation time
            ours = build_encoder(name, width=1.0, stem="imagenet")
            theirs = getattr(tv, name)(weights=None)
        n_ours = sum(p.numel() for p in ours.parameters())
        n_theirs = sum(p.numel() for n, p in theirs.named_parameters() if not n.startswith("fc."))
        assert n_ours == n_theirs, name
        assert ours.groups == theirs.groups and int(ours.base_width) == theirs.base_width
    # ResNeXt keeps its grouped 3x3 convs at small widths
    small = build_encoder("resnext50_32x4d", width=0.125)
    assert small.layer1[0].conv2.groups == 4
    assert build_encoder("resnet18", width=0.5).feature_dim == 256


def test_stems():
    x = torch.randn(1, 3, 64, 64)
    cifar = build_encoder("resnet18", width=WIDTH, stem="cifar", embed_dim=4)
    imagenet = build_encoder("resnet18", width=WIDTH, stem="imagenet", embed_dim=4)
    assert cifar(x, return_maps=True)[1][-1].shape[-1] == 8
    assert imagenet(x, return_maps=True)[1][-1].shape[-1] == 2  # 7x7/2 + max-pool: 4x further down
    assert imagenet.conv1.kernel_size == (7, 7) and cifar.conv1.kernel_size == (3, 3)
    amdim = build_encoder("amdim", width=WIDTH, image_size=128, stem="imagenet", depth=1).eval()  # BN on its output
    assert amdim(torch.randn(1, 3, 128, 128)).shape == (1, round(2560 * WIDTH))


def test_layer_norm_option_has_no_batch_norm():
    enc = build_encoder("resnet18", width=WIDTH, norm="layer")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())


def test_method_side_builders():
    maps = build_map_encoder("resnet18", 32, width=WIDTH)
    out = maps(torch.randn(2, 3, 32, 32))
    assert [tuple(m.shape) for m in out] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 1, 1)]
    assert maps.n_rkhs == 32
    patch = build_patch_encoder("resnet10", 32, width=WIDTH)
    assert patch(torch.randn(2, 3, 32, 32)).shape == (2, patch.feature_dim, 7, 7)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in patch.modules())


def test_method_encoder_keeps_the_methods_width_unless_encoder_kwargs_set_one():
    from csl_ext.encoders.registry import method_encoder

    zero = method_encoder("resnet18", {"zero_init_residual": True}, width=8)
    assert zero.width == 8 and zero.zero_init_residual and zero.conv1.kernel_size == (3, 3)
    assert method_encoder("resnet18", {"width": 0.0625}, width=8).width == 4
    assert method_encoder("resnet18", {"base_width": 4}, width=8).width == 4
    assert method_encoder("resnet18", None, width=8, cifar_stem=False).conv1.kernel_size == (7, 7)


def _last_norms(encoder):
    blocks = [m for m in encoder.modules() if isinstance(m, (tv.BasicBlock, tv.Bottleneck))]
    return [b.bn3 if isinstance(b, tv.Bottleneck) else b.bn2 for b in blocks]


@pytest.mark.parametrize("name, norm", [("resnet18", "batch"), ("resnet50", "batch"), ("resnet18", "layer")])
def test_zero_init_residual_starts_every_block_as_its_shortcut(name, norm):
    torch.manual_seed(0)
    zero = build_encoder(name, width=WIDTH, norm=norm, zero_init_residual=True).eval()
    torch.manual_seed(0)
    default = build_encoder(name, width=WIDTH, norm=norm).eval()
    assert all(torch.equal(n.weight, torch.zeros_like(n.weight)) for n in _last_norms(zero))
    assert all(torch.equal(n.weight, torch.ones_like(n.weight)) for n in _last_norms(default))
    # the same draws for every other parameter: only the last norms' scales differ
    differ = [k for k, v in zero.state_dict().items() if not torch.equal(v, default.state_dict()[k])]
    assert differ and all(k.endswith(".weight") and ("bn3" in k or "bn2" in k) for k in differ)
    # each block is relu(shortcut(x)): the encoder equals one whose residual branches output 0
    x = torch.randn(3, 3, 32, 32)
    for block in [m for m in default.modules() if isinstance(m, (tv.BasicBlock, tv.Bottleneck))]:
        last_conv = block.conv3 if isinstance(block, tv.Bottleneck) else block.conv2
        nn.init.zeros_(last_conv.weight)
    torch.testing.assert_close(zero(x), default(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: build_encoder("resnet7"), "encoder must be one of"),
        (lambda: build_encoder("resnet18", width=0), "width must be a number > 0"),
        (lambda: build_encoder("resnet18", stem="huge"), "stem must be one of"),
        (lambda: build_encoder("resnet18", norm="instance"), "norm must be one of"),
        (lambda: build_encoder("resnet18", depth=3), "encoder_kwargs for 'resnet18'"),
        (lambda: build_encoder("resnet18", zero_init_residual=1), "zero_init_residual must be True or False"),
        (lambda: build_encoder("amdim", image_size=32, stem="imagenet"), "does not fit image_size=32"),
        (lambda: build_encoder("cpc_resnet", stem="imagenet"), "stem must be 'cifar' for the cpc_resnet"),
        (lambda: build_patch_encoder("amdim", 32), "cannot encode CPC's patches"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
