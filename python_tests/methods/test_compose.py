"""compose(): methods from the five parts by name. SimCLR, AMDIM and YADIM
composed from their parts equal the classes (same loss and gradients from
the same seed and batch); incompatible parts are refused naming both; every
method trains through csl-train's Trainer with a non-default encoder."""

import json

import pytest
import torch

from csl_ext.cli import main as csl_train
from csl_ext.methods import METHODS, build_method, compose
from csl_ext.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"width": 0.0625}


def _grads(method):
    return {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}


def _same_step(cls_method, composed, views, seed=1):
    assert [n for n, _ in cls_method.named_parameters()] == [n for n, _ in composed.named_parameters()]
    for a, b in zip(cls_method.parameters(), composed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # same seed -> same initial weights
    losses = []
    for m in (cls_method, composed):
        m.train()
        torch.manual_seed(seed)  # the random source locations / patch augmentations
        out = m.training_step(views)
        out.loss.backward()
        losses.append(out.loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    g1, g2 = _grads(cls_method), _grads(composed)
    assert g1.keys() == g2.keys() and len(g1) > 0
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-5, atol=1e-6, msg=name)
    return losses[0]


def _build(seed, fn, **kwargs):
    torch.manual_seed(seed)
    return fn(**kwargs)


def test_compose_simclr_equals_the_class():
    views = (torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32))
    kw = {"encoder_kwargs": SMALL, "hidden_dim": 32, "proj_dim": 16, "temperature": 0.5}
    cls = _build(0, build_method, name="simclr", encoder="resnet18", **kw)
    composed = _build(
        0,
        compose,
        augmentation="simclr",
        encoder="resnet18",
        extraction="pooled",
        similarity="projection_cosine",
        loss="nt_xent",
        **kw,
    )
    assert composed.augmentation == cls.augmentation and composed.num_views == 2 and composed.global_bn
    _same_step(cls, composed, views)


@pytest.mark.parametrize("comparisons", ["amdim", "last_random"])
def test_compose_amdim_equals_the_class(comparisons):
    views = (torch.randn(5, 3, 32, 32), torch.randn(5, 3, 32, 32))
    enc = {"width": 0.0625, "depth": 1}
    cls = _build(0, build_method, name="amdim", encoder="amdim", encoder_kwargs=enc, comparisons=comparisons)
    composed = _build(
        0,
        compose,
        augmentation="amdim",
        encoder="amdim",
        extraction=comparisons,
        similarity="scaled_dot",
        loss="amdim_nce",
        encoder_kwargs=enc,
    )
    _same_step(cls, composed, views)


def test_compose_yadim_equals_the_class_patch_stage_included():
    views = (torch.randn(5, 3, 32, 32), torch.randn(5, 3, 32, 32))
    enc = {"width": 0.0625, "depth": 1}
    cls = _build(0, build_method, name="yadim", encoder="amdim", encoder_kwargs=enc)
    composed = _build(
        0,
        compose,
        augmentation="yadim",
        encoder="amdim",
        extraction="(-1:-1)",
        similarity="scaled_dot",
        loss="amdim_nce",
        encoder_kwargs=enc,
    )
    assert composed.patch_stage is not None and composed.augmentation == "yadim"
    loss = _same_step(cls, composed, views)
    # the patch stage is part of the step: without it the loss differs
    plain = _build(
        0,
        compose,
        augmentation="yadim",
        encoder="amdim",
        extraction="(-1:-1)",
        similarity="scaled_dot",
        loss="amdim_nce",
        encoder_kwargs=enc,
        patch_stage=False,
    )
    torch.manual_seed(1)
    assert not torch.allclose(plain.training_step(views).loss, loss)


def test_compose_yadim_with_a_torchvision_encoder_uses_its_maps():
    m = compose(
        augmentation="yadim",
        encoder="resnet18",
        extraction="same_level",
        similarity="scaled_dot",
        loss="amdim_nce",
        encoder_kwargs=SMALL,
    )
    maps = m.encoder(torch.randn(2, 3, 32, 32))
    assert [tuple(x.shape) for x in maps] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 1, 1)]
    assert torch.isfinite(m.training_step((torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32))).loss)


def test_compose_moco_and_cpc_like_methods_step():
    moco = compose(
        augmentation="moco_v2",
        encoder="resnet10",
        extraction="pooled",
        similarity="projection_cosine",
        loss="info_nce",
        encoder_kwargs=SMALL,
        queue_size=8,
        hidden_dim=16,
        proj_dim=8,
    )
    ptr = int(moco.queue_ptr)
    out = moco.training_step((torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)))
    assert torch.isfinite(out.loss) and int(moco.queue_ptr) == ptr + 4
    cpc = compose(
        augmentation="cpc_v2",
        encoder="resnet10",
        extraction="cpc",
        similarity="scaled_dot",
        loss="cpc_infonce",
        encoder_kwargs=SMALL,
        offsets=(1, 2),
        context_blocks=1,
    )
    assert cpc.num_views == 1
    assert torch.isfinite(cpc.training_step((torch.randn(2, 7, 7, 3, 8, 8),)).loss)


@pytest.mark.parametrize(
    "parts, names",
    [
        ({"loss": "nt_xent", "extraction": "amdim"}, ("loss='nt_xent'", "extraction='amdim'")),
        (
            {"loss": "amdim_nce", "extraction": "last", "similarity": "cosine"},
            ("loss='amdim_nce'", "similarity='cosine'"),
        ),
        ({"loss": "nt_xent", "similarity": "dot"}, ("loss='nt_xent'", "similarity='dot'")),
        (
            {"loss": "cpc_infonce", "extraction": "cpc", "similarity": "dot"},
            ("augmentation='simclr'", "extraction='cpc'"),
        ),
        (
            {
                "augmentation": "cpc_v2",
                "loss": "cpc_infonce",
                "extraction": "cpc",
                "similarity": "dot",
                "encoder": "amdim",
            },
            ("encoder='amdim'", "extraction='cpc'"),
        ),
    ],
)
def test_incompatible_parts_name_both(parts, names):
    full = {
        "augmentation": "simclr",
        "encoder": "resnet18",
        "extraction": "pooled",
        "similarity": "projection_cosine",
        "loss": "nt_xent",
    }
    full.update(parts)
    with pytest.raises(ValueError) as info:
        compose(**full, encoder_kwargs=SMALL)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"augmentation": "rotations"}, "augmentation must be one of"),
        ({"encoder": "vit"}, "encoder must be one of"),
        ({"extraction": "(-1:-9)"}, "extraction must be 'pooled', 'cpc' or a comparison spec"),
        ({"similarity": "bilinear"}, "similarity must be one of"),
        ({"tclip": 3.0}, r"unknown hyperparameters \['tclip'\] for loss='nt_xent'"),
    ],
)
def test_unknown_choices_are_named(kwargs, match):
    full = {
        "augmentation": "simclr",
        "encoder": "resnet18",
        "extraction": "pooled",
        "similarity": "projection_cosine",
        "loss": "nt_xent",
        "encoder_kwargs": SMALL,
    }
    full.update(kwargs)
    with pytest.raises(ValueError, match=match):
        compose(**full)


# Each method, two optimiser steps through the Trainer with a non-default encoder.
NON_DEFAULT = {
    "simclr": {"encoder": "wide_resnet50_2", "encoder_kwargs": SMALL, "hidden_dim": 32, "proj_dim": 16},
    "moco_v2": {
        "encoder": "resnext50_32x4d",
        "encoder_kwargs": SMALL,
        "hidden_dim": 32,
        "proj_dim": 16,
        "queue_size": 32,
    },
    "byol": {"encoder": "resnet34", "encoder_kwargs": SMALL, "hidden_dim": 32, "proj_dim": 16},
    "amdim": {"encoder": "resnet18", "encoder_kwargs": SMALL},
    "yadim": {"encoder": "resnet50", "encoder_kwargs": SMALL},
    "cpc_v2": {"encoder": "resnet10", "encoder_kwargs": SMALL, "offsets": (1, 2), "context_blocks": 1},
    "composed": {
        "augmentation": "yadim",
        "encoder": "resnext50_32x4d",
        "extraction": "same_level",
        "similarity": "scaled_dot",
        "loss": "amdim_nce",
        "encoder_kwargs": SMALL,
    },
}


def test_every_method_has_a_non_default_encoder_case():
    assert set(NON_DEFAULT) == set(METHODS)


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_method_trains_two_steps_with_a_non_default_encoder(name, tmp_path):
    result = train(
        TrainConfig(
            method=name,
            method_kwargs=NON_DEFAULT[name],
            subset=32,
            batch_size=16,
            epochs=1,
            max_steps=2,
            num_workers=0,
            backend="torchvision",
            output_dir=str(tmp_path),
            progress=False,
            tensorboard=False,
            augment_kwargs={"flip_p": 0.0},
        )
    )
    assert result.step == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    encoder_name = NON_DEFAULT[name]["encoder"]
    assert any(type(m).__name__ == "ResNetEncoder" for m in result.method.modules()), encoder_name
    moved = [n for n, p in result.method.named_parameters() if p.requires_grad and "encoder" in n]
    assert moved


def test_csl_train_takes_encoder_method_kwargs(tmp_path, capsys):
    kwargs = {"encoder": "wide_resnet50_2", "encoder_kwargs": {"width": 0.0625}, "hidden_dim": 32, "proj_dim": 16}
    status = csl_train(
        [
            "--method",
            "simclr",
            "--method-kwargs",
            json.dumps(kwargs),
            "--subset",
            "32",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--num-workers",
            "0",
            "--backend",
            "torchvision",
            "--output-dir",
            str(tmp_path / "simclr"),
            "--no-progress",
        ]
    )
    assert status == 0 and "stopped at step 1" in capsys.readouterr().out
    parts = {
        "augmentation": "amdim",
        "encoder": "resnet18",
        "extraction": "last",
        "similarity": "scaled_dot",
        "loss": "amdim_nce",
        "encoder_kwargs": {"width": 0.0625},
    }
    status = csl_train(
        [
            "--method",
            "composed",
            "--method-kwargs",
            json.dumps(parts),
            "--subset",
            "32",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--num-workers",
            "0",
            "--backend",
            "torchvision",
            "--output-dir",
            str(tmp_path / "composed"),
            "--no-progress",
        ]
    )
    assert status == 0 and "stopped at step 1" in capsys.readouterr().out
