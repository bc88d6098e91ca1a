"""AMDIM, CPC v2 and YADIM: the defaults their papers' code used (optimiser,
schedule, tclip, CPC steps / directions / target size / scale, encoders)."""

import pytest
import torch

from csl_ext.encoders.cpc_resnet import CPC_RESNET_PRESETS, cpc_resnet
from csl_ext.methods import build_method
from csl_ext.methods.infomax_optimizer import InfomaxOptimizer
from csl_ext.tasks.cpc import CPCTask, default_offsets

SMALL = {
    "amdim": {"ndf": 8, "n_rkhs": 32, "depth": 1},
    "yadim": {"ndf": 8, "n_rkhs": 32, "depth": 1},
    "cpc_v2": {"blocks": (1,), "width": 4, "context_blocks": 1},
}


def adam_group(method, total_steps=100):
    optimizer, scheduler = method.configure_optimizer(batch_size=8, total_steps=total_steps, steps_per_epoch=10)
    return optimizer, scheduler, optimizer.param_groups[0]


@pytest.mark.parametrize("name,eps", [("amdim", 1e-8), ("yadim", 1e-7), ("cpc_v2", 1e-7)])
def test_default_optimiser_is_the_reference_adam(name, eps):
    # amdim-public: Adam(betas=(0.8, 0.999), eps=1e-8, weight_decay=1e-5); pl_bolts: eps 1e-7
    optimizer, _, group = adam_group(build_method(name, **SMALL[name]))
    assert isinstance(optimizer, torch.optim.Adam)
    assert group["betas"] == (0.8, 0.999) and group["eps"] == eps and group["weight_decay"] == 1e-5


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("choice,kind", [("sgd", torch.optim.SGD), ("lars", None), ("adam", torch.optim.Adam)])
def test_optimizer_is_a_choice(name, choice, kind):
    optimizer, _, _ = adam_group(build_method(name, optimizer=choice, lr=0.1, **SMALL[name]))
    assert type(optimizer).__name__.lower() == choice if kind is None else isinstance(optimizer, kind)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_method(name, optimizer="rmsprop", **SMALL[name])


def lrs(scheduler, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_amdim_schedule_is_the_references_warmup_then_step_decay():
    method = build_method("amdim", lr=1.0, **SMALL["amdim"])
    optimizer, scheduler, _ = adam_group(method, total_steps=6000)
    rates = lrs(scheduler, optimizer, 6000)
    # 500-step linear warm-up (amdim-public's _train), then x0.2 at 250/300 and 280/300 of the run
    assert rates[0] == pytest.approx(1 / 500) and rates[499] == pytest.approx(1.0)
    assert rates[4999] == pytest.approx(1.0) and rates[5000] == pytest.approx(0.2)
    assert rates[5599] == pytest.approx(0.2) and rates[5600] == pytest.approx(0.04)


def test_short_runs_cap_the_warmup():
    config = InfomaxOptimizer(warmup_steps=500, warmup_fraction=0.1)
    assert config.warmup_for(75) == 7 and config.warmup_for(100_000) == 500
    with pytest.raises(ValueError, match="schedule"):
        InfomaxOptimizer(schedule="linear")


@pytest.mark.parametrize("name,schedule,warmup", [("yadim", "constant", 0), ("cpc_v2", "constant", 0)])
def test_pl_bolts_methods_run_at_a_constant_rate(name, schedule, warmup):
    method = build_method(name, lr=1.0, **SMALL[name])
    optimizer, scheduler, _ = adam_group(method, total_steps=50)
    assert lrs(scheduler, optimizer, 50) == [1.0] * 50


def test_tclip_defaults():
    # amdim-public trains AMDIM at 20; pl_bolts (Falcon & Cho's YADIM) clips at 10
    assert build_method("amdim", **SMALL["amdim"]).task.tclip == 20.0
    assert build_method("yadim", **SMALL["yadim"]).task.tclip == 10.0
    assert build_method("amdim", tclip=10.0, **SMALL["amdim"]).task.tclip == 10.0


def test_amdim_encodes_each_view_on_its_own():
    """BatchNorm on the embeddings sees one view's batch, as the reference's two encoder calls."""
    torch.manual_seed(0)
    method = build_method("amdim", **SMALL["amdim"])
    x1, x2 = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32) * 3 + 1
    seen = []
    hook = method.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    method.ssl_step((x1, x2))
    hook.remove()
    assert seen == [4, 4]


# -- CPC v2 ----------------------------------------------------------------------------------------
def pixel_rows(row, patch, stride):
    return set(range(row * stride, row * stride + patch))


@pytest.mark.parametrize("image_size", [32, 64, 256])
def test_default_steps_never_target_pixels_the_context_saw(image_size):
    method = build_method("cpc_v2", image_size=image_size, **SMALL["cpc_v2"])
    patch, stride = method.encoder.patch_size, method.encoder.stride
    rows = (image_size - patch) // stride + 1
    assert rows == 7 and method.task.offsets == (2, 3, 4, 5, 6)
    for k in method.task.offsets:
        for i in range(rows - k):  # context row i sees grid rows 0..i
            seen = set().union(*(pixel_rows(r, patch, stride) for r in range(i + 1)))
            assert not seen & pixel_rows(i + k, patch, stride), (k, i)
    # and a step of 1 would: the shortcut the old default had
    assert pixel_rows(0, patch, stride) & pixel_rows(1, patch, stride)
    assert default_offsets(7, 8, 4) == (2, 3, 4, 5, 6) and default_offsets(7, 3, 4) == (1, 2, 3, 4, 5, 6)


def test_cpc_defaults_target_dim_scale_and_both_directions():
    task = build_method("cpc_v2", **SMALL["cpc_v2"]).task
    assert task.target_head.out_channels == 64 and task.scale == 0.1
    assert task.directions == ("down", "up")
    assert set(task.contexts) == set(task.heads) == {"down", "up"}
    down, up = task.heads["down"], task.heads["up"]
    assert all(a.weight.data_ptr() != b.weight.data_ptr() for a, b in zip(down, up))  # separate heads
    assert build_method("cpc_v2", directions=("down",), **SMALL["cpc_v2"]).task.directions == ("down",)
    with pytest.raises(ValueError, match="directions"):
        CPCTask(8, directions=("left",))


def test_up_direction_is_down_on_the_flipped_grid():
    """'up' predicts rows above: the loss of an up-only task on a grid equals
    that of a down-only task with the same weights on the grid flipped."""
    torch.manual_seed(0)
    up = CPCTask(6, offsets=(2, 3), target_dim=5, context_blocks=1, directions=("up",)).double()
    down = CPCTask(6, offsets=(2, 3), target_dim=5, context_blocks=1, directions=("down",)).double()
    down.target_head.load_state_dict(up.target_head.state_dict())
    down.contexts["down"].load_state_dict(up.contexts["up"].state_dict())
    down.heads["down"].load_state_dict(up.heads["up"].state_dict())
    grid = torch.randn(3, 6, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(up(grid), down(grid.flip(2)))
    both = CPCTask(6, offsets=(2, 3), target_dim=5, context_blocks=1).double()
    assert both(grid).isfinite()


def test_resnet161_preset_is_cpc_v2s_widened_third_stack():
    with torch.device("meta"):  # ~300M parameters: layout only, no memory
        net = cpc_resnet("resnet161")
    stages = {}
    for block in net.features:
        if hasattr(block, "body"):
            width = block.body[2].out_channels
            stages.setdefault(width, []).append(block.body[-1].out_channels)
    # ResNet-101's stacks of 3 and 4 blocks, then the third stack widened to 46 blocks of 512 -> 4096
    assert {w: (len(c), c[-1]) for w, c in stages.items()} == {64: (3, 256), 128: (4, 512), 512: (46, 4096)}
    assert net.out_dim == 4096
    assert CPC_RESNET_PRESETS["resnet101"]["blocks"] == (3, 4, 23)
    with pytest.raises(ValueError, match="encoder must be 'resnet161'.* or one of"):
        build_method("cpc_v2", encoder="resnet162")


def test_cpc_embedding_is_the_grids_mean_or_the_flattened_grid():
    """embedding="mean" is CPC v2's paper's mean-pooled grid, "grid" pl_bolts'
    fine-tuner input (the (N, D, 7, 7) grid flattened); the online probe reads
    the same features."""
    torch.manual_seed(0)
    images = torch.randn(3, 3, 32, 32)
    mean = build_method("cpc_v2", num_classes=10, **SMALL["cpc_v2"]).eval()
    grid = build_method("cpc_v2", num_classes=10, embedding="grid", **SMALL["cpc_v2"]).eval()
    grid.encoder.load_state_dict(mean.encoder.state_dict())  # the same encoder; the probes differ in size
    maps = mean.encoder(images)  # N x D x 7 x 7
    assert maps.shape[2:] == (7, 7)
    torch.testing.assert_close(mean.embed(images), maps.mean(dim=(2, 3)))
    torch.testing.assert_close(grid.embed(images), maps.flatten(1))
    assert grid.feature_dim == 49 * mean.feature_dim == grid.embed(images).shape[1]
    assert grid.probe.in_features == grid.feature_dim

    patches = torch.randn(4, 7, 7, 3, 8, 8)  # the "cpc_v2" augmentation's grid at 32 px
    out = grid.train().training_step((patches,), labels=torch.tensor([0, 1, 2, -1]))
    assert out.loss.isfinite() and out.probe_acc is not None
    with pytest.raises(ValueError, match="embedding must be one of"):
        build_method("cpc_v2", embedding="pooled", **SMALL["cpc_v2"])
