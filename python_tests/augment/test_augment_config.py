"""Parameters of every method and argument checking (no DALI needed)."""

import warnings

import pytest

from csl_ext.augment import make_augmentation, method_config
from csl_ext.augment import factory
from csl_ext.augment.config import ColorJitter, PatchConfig, ViewConfig


def test_simclr_parameters_follow_the_paper():
    cfg = method_config("simclr", 224, strength=0.5)
    v = cfg.views[0]
    assert cfg.num_views == 2 and v.crop_scale == (0.08, 1.0)
    assert v.jitter == ColorJitter(0.4, 0.4, 0.4, 0.1) and v.jitter_p == 0.8
    assert v.gray_p == 0.2 and v.blur_p == 0.5 and v.blur_sigma == (0.1, 2.0)
    assert v.blur_kernel == 23  # ~10% of 224, odd


def test_blur_off_by_default_at_32_pixels():
    assert not method_config("simclr", 32).views[0].blur_enabled
    assert method_config("simclr", 32, blur=True).views[0].blur_enabled
    assert method_config("simclr", 64).views[0].blur_enabled


def test_byol_views_are_asymmetric():
    v0, v1 = method_config("byol", 96).views
    assert (v0.blur_p, v1.blur_p) == (1.0, 0.1)
    assert (v0.solarize_p, v1.solarize_p) == (0.0, 0.2)


def test_amdim_cpc_yadim_eval_shapes_of_config():
    assert method_config("amdim", 32).views[0].crop_scale == (0.3, 1.0)
    t = method_config("amdim", 32, jitter_mode="translate").views[0]
    assert t.crop_scale is None and t.translate == 4
    cpc = method_config("cpc_v2", 32)
    assert cpc.num_views == 1 and cpc.patch.grid(32) == 7  # 8 px patches, stride 4
    y = method_config("yadim", 32).views[0]
    assert y.crop_scale is not None and y.translate > 0 and y.gray_p > 0 and y.jitter_p > 0
    e = method_config("eval", 224)
    assert e.num_views == 1 and e.eval_resize == 256


@pytest.mark.parametrize("kwargs, name", [
    (dict(method="nope", image_size=32), "method"),
    (dict(method="simclr", image_size=8), "image_size"),
    (dict(method="simclr", image_size=32, strength=-1), "strength"),
    (dict(method="amdim", image_size=32, jitter_mode="zoom"), "jitter_mode"),
    (dict(method="simclr", image_size=32, gray_p=1.5), "gray_p"),
    (dict(method="simclr", image_size=32, flip_p=-0.1), "flip_p"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        method_config(**kwargs)


def test_bad_stage_parameters():
    with pytest.raises(ValueError, match="blur_kernel"):
        ViewConfig(blur_p=0.5, blur_kernel=4)
    with pytest.raises(ValueError, match="hue"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="crop_scale"):
        ViewConfig(crop_scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="patch.gray_p"):
        PatchConfig(8, 4, gray_p=2.0)


def test_factory_backend_choice(monkeypatch):
    with pytest.raises(ValueError, match="backend"):
        make_augmentation("simclr", 32, backend="opencv")
    monkeypatch.setattr(factory, "dali_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="torchvision"):
        aug = make_augmentation("simclr", 32)
    assert aug.backend == "torchvision"
    with pytest.raises(ImportError):
        make_augmentation("simclr", 32, backend="dali")
    monkeypatch.setattr(factory, "dali_available", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_augmentation("simclr", 32).backend == "dali"
