"""Parameters of every method and argument checking (no DALI needed)."""

import warnings

import pytest

import csl_ext.augment.config as config_module
from csl_ext.augment import RECIPES, factory, make_augmentation, method_config
from csl_ext.augment.config import ColorJitter, MethodConfig, PatchConfig, ViewConfig
from csl_ext.augment.recipes import RECIPE_TABLE
from csl_ext.methods import METHODS


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


def test_simclr_at_32_pixels_is_the_authors_cifar_setting():
    # google-research/simclr README, CIFAR-10: --color_jitter_strength=0.5 --use_blur=False
    v = method_config("simclr", 32).views[0]
    assert v.jitter == ColorJitter(0.4, 0.4, 0.4, 0.1) and not v.blur_enabled
    big = method_config("simclr", 64).views[0]  # ImageNet setting above 32 px: strength 1, blur
    assert big.jitter == ColorJitter(0.8, 0.8, 0.8, 0.2) and big.blur_enabled
    assert method_config("simclr", 32, strength=1.0).views[0].jitter == ColorJitter(0.8, 0.8, 0.8, 0.2)


@pytest.mark.parametrize(
    "size, geometry, hue",
    [
        (32, dict(crop_scale=None, translate=4, translate_p=0.8), 0.2),  # TransformsC10
        (64, dict(crop_scale=(0.3, 1.0), crop_ratio=(0.7, 1.4), interpolation="bicubic", translate=0), 0.2),  # STL10
        (128, dict(crop_scale=(0.3, 1.0), crop_ratio=(0.7, 1.4), interpolation="bicubic", translate=0), 0.1),
    ],
)
def test_amdim_follows_the_reference_transforms(size, geometry, hue):
    cfg = method_config("amdim", size)
    assert cfg.num_views == 2 and cfg.views[0] == cfg.views[1]
    assert cfg.shared_flip_p == 0.5 and cfg.views[0].flip_p == 0.0  # one flip per image
    v = cfg.views[0]
    for name, value in geometry.items():
        assert getattr(v, name) == value, name
    assert v.jitter == ColorJitter(0.4, 0.4, 0.4, hue) and v.jitter_p == 0.8 and v.gray_p == 0.25


def test_amdim_jitter_mode_and_independent_flips_are_options():
    assert method_config("amdim", 32, jitter_mode="crop").views[0].crop_scale == (0.3, 1.0)
    t = method_config("amdim", 64, jitter_mode="translate").views[0]
    assert t.crop_scale is None and t.translate == 8
    independent = method_config("amdim", 32, flip_p=0.5)
    assert independent.shared_flip_p == 0.0 and independent.views[0].flip_p == 0.5
    no_flip = method_config("yadim", 32, flip_p=0.0)  # e.g. digits' AUGMENT_OVERRIDES
    assert no_flip.shared_flip_p == 0.0 and no_flip.views[0].flip_p == 0.0


def test_cpc_yadim_eval_shapes_of_config():
    cpc = method_config("cpc_v2", 32)
    assert cpc.num_views == 1 and cpc.patch.grid(32) == 7  # 8 px patches, stride 4
    assert cpc.views[0].flip_p == 0.5 and cpc.views[0].translate == 4  # AMDIM's image stages
    y = method_config("yadim", 32)
    v = y.views[0]
    assert v.crop_scale == (0.3, 1.0) and v.translate == 4 and v.translate_p == 0.8
    assert v.gray_p == 0.25 and v.jitter_p == 0.8 and y.shared_flip_p == 0.5
    e = method_config("eval", 224)
    assert e.num_views == 1 and e.eval_resize == 256


def test_recipe_table_covers_every_registered_method():
    # every method has its recipe ("composed" takes any recipe as its augmentation part)
    assert set(RECIPES) == (set(METHODS) - {"composed"}) | {"eval"} and tuple(RECIPE_TABLE) == RECIPES
    for name in RECIPES:
        for size in (16, 32, 64, 224):
            cfg = method_config(name, size)
            assert isinstance(cfg, MethodConfig) and cfg.method == name and cfg.image_size == size
    assert not hasattr(config_module, "METHODS")  # the registry alone is called METHODS


@pytest.mark.parametrize(
    "alias, canonical",
    [("moco", "moco_v2"), ("cpc", "cpc_v2"), ("MoCo-v2", "moco_v2"), ("SimCLR", "simclr"), ("ydim", "yadim")],
)
def test_other_spellings_are_refused_with_the_canonical_name(alias, canonical):
    with pytest.raises(ValueError, match=f"did you mean '{canonical}'"):
        method_config(alias, 32)
    with pytest.raises(ValueError, match=f"did you mean '{canonical}'"):
        make_augmentation(alias, 32, backend="torchvision")


def test_shared_flip_excludes_per_view_flips():
    with pytest.raises(ValueError, match="shared_flip_p"):
        MethodConfig("amdim", 32, (ViewConfig(flip_p=0.5),), (0.5,) * 3, (0.5,) * 3, shared_flip_p=0.5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(method="nope", image_size=32), "method"),
        (dict(method="simclr", image_size=8), "image_size"),
        (dict(method="simclr", image_size=32, strength=-1), "strength"),
        (dict(method="amdim", image_size=32, jitter_mode="zoom"), "jitter_mode"),
        (dict(method="amdim", image_size=32, translate_p=1.5), "translate_p"),
        (dict(method="amdim", image_size=64, interpolation="nearest"), "interpolation"),
        (dict(method="simclr", image_size=32, zoom=2), "zoom"),
        (dict(method="simclr", image_size=32, gray_p=1.5), "gray_p"),
        (dict(method="simclr", image_size=32, flip_p=-0.1), "flip_p"),
    ],
)
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
    with pytest.raises(ValueError, match="patch.color_drop_p"):
        PatchConfig(8, 4, color_drop_p=-0.5)
    with pytest.raises(ValueError, match="patch.color_drop_fill must be one of"):
        PatchConfig(8, 4, color_drop_fill="noise")


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


def test_twin_uses_the_configured_interpolation():
    from torchvision.transforms import InterpolationMode

    from csl_ext.augment.torchvision_twins import view_transform

    crop = view_transform(method_config("amdim", 64).views[0], 64, (0.5,) * 3, (0.5,) * 3).transforms[0]
    assert crop.interpolation == InterpolationMode.BICUBIC and crop.scale == (0.3, 1.0)
