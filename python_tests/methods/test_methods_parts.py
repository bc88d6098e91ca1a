"""The parts the methods add: LARS, the warm-up + cosine schedule, BYOL's
loss and tau schedule, the ResNet encoder and MoCo's queue."""

import copy
import math

import pytest
import torch

from csl_ext.encoders.resnet import ResNetEncoder
from csl_ext.losses.byol import byol_loss
from csl_ext.methods import build_method
from csl_ext.methods.byol import byol_tau
from csl_ext.optim import LARS, exclude_from_wd_and_adaptation, lr_scale_groups, make_optimizer, warmup_cosine_lambda


def test_warmup_cosine():
    f = warmup_cosine_lambda(total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine_lambda(10, 11)


def test_lars_step_is_trust_ratio_scaled_and_skips_1d_params():
    w = torch.nn.Parameter(torch.full((2, 2), 2.0))  # ||w|| = 4
    b = torch.nn.Parameter(torch.ones(2))
    opt = LARS(exclude_from_wd_and_adaptation([w, b]), lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.01)
    w.grad, b.grad = torch.full((2, 2), 0.5), torch.full((2,), 0.5)  # ||g|| = 1
    opt.step()
    # trust ratio 0.01 * 4 / 1 = 0.04: w moves by 0.04 * 0.5; b by plain SGD
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 2.0 - 0.02))
    torch.testing.assert_close(b.detach(), torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="lr"):
        LARS([w], lr=0.0)


def test_parameter_groups_keep_their_options_through_the_lars_split():
    w, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))
    v, c = torch.nn.Parameter(torch.ones(3, 2)), torch.nn.Parameter(torch.ones(3))
    groups = exclude_from_wd_and_adaptation([{"params": [w, b]}, {"params": [v, c], "lr": 5.0}])
    assert [[id(p) for p in g["params"]] for g in groups] == [[id(w)], [id(b)], [id(v)], [id(c)]]
    assert [g.get("lr") for g in groups] == [None, None, 5.0, 5.0]
    assert [g.get("lars_exclude", False) for g in groups] == [False, True, False, True]


@pytest.mark.parametrize("name", ["lars", "sgd", "adam"])
def test_make_optimizer_lr_scale(name):
    w, v = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(3, 2))
    opt, sched = make_optimizer(
        name, [{"params": [w]}, {"params": [v], "lr_scale": 4.0}], lr=0.5, total_steps=10, warmup_steps=2
    )
    for _ in range(5):  # after the warm-up, on the cosine: the ratio is kept
        rates = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
        assert rates[id(v)] == pytest.approx(4.0 * rates[id(w)]) and rates[id(w)] > 0
        opt.step()
        sched.step()
    assert all("lr_scale" not in g for g in opt.param_groups)
    with pytest.raises(ValueError, match="lr_scale must be a number > 0"):
        make_optimizer(name, [{"params": [w], "lr_scale": 0.0}], lr=0.5, total_steps=10)


def test_lr_scale_groups_split_off_a_submodule():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    rest, scaled = lr_scale_groups(net, net[1], 10.0)
    assert [id(p) for p in rest["params"]] == [id(p) for m in (net[0], net[2]) for p in m.parameters()]
    assert [id(p) for p in scaled["params"]] == [id(p) for p in net[1].parameters()]
    assert "lr_scale" not in rest and scaled["lr_scale"] == 10.0


def test_byol_loss_and_tau():
    p = torch.randn(5, 8, requires_grad=True)
    assert byol_loss(p, p.detach()).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(p, -p.detach()).item() == pytest.approx(4.0, abs=1e-5)
    z = torch.randn(5, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert z.grad is None and p.grad is not None  # the target gets no gradient
    assert byol_tau(0, 100) == pytest.approx(0.996) and byol_tau(100, 100) == pytest.approx(1.0)
    assert byol_tau(50, 100) == pytest.approx(1 - 0.004 * 0.5)
    with pytest.raises(ValueError, match="same shape"):
        byol_loss(torch.randn(2, 3), torch.randn(2, 4))


def test_resnet_encoder_shapes_and_torchvision_equivalence():
    import torchvision

    enc = ResNetEncoder("resnet18", cifar_stem=False, width=64)
    ref = torchvision.models.resnet18()
    assert sum(p.numel() for p in enc.parameters()) == sum(
        p.numel() for n, p in ref.named_parameters() if not n.startswith("fc.")
    )
    small = ResNetEncoder("resnet10", cifar_stem=True, width=8)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 64)
    with pytest.raises(ValueError, match="arch must be one of"):
        ResNetEncoder("resnet7")
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        small(torch.randn(2, 1, 32, 32))


def test_moco_queue_replaces_oldest_keys_and_key_encoder_moves_slowly():
    torch.manual_seed(0)
    moco = build_method("moco_v2", arch="resnet10", width=4, hidden_dim=16, proj_dim=8, queue_size=12, momentum=0.5)
    old = moco.queue.clone()
    x = torch.randn(4, 3, 16, 16)
    moco((x, x))
    assert (
        int(moco.queue_ptr) == 4 and torch.equal(moco.queue[4:], old[4:]) and not torch.equal(moco.queue[:4], old[:4])
    )
    torch.testing.assert_close(moco.queue[:4].norm(dim=1), torch.ones(4))
    with pytest.raises(ValueError, match="queue_size"):
        moco.check_batch_size(8)
    assert math.isclose(moco.momentum, 0.5)


def test_moco_bn_splits_shuffle_the_keys_across_batch_norm_groups():
    torch.manual_seed(0)
    moco = build_method("moco_v2", arch="resnet10", width=4, hidden_dim=16, proj_dim=8, queue_size=16, bn_splits=2)
    x = torch.randn(8, 3, 16, 16)
    twin = copy.deepcopy(moco)  # same weights and BN buffers, for the expected keys
    torch.manual_seed(1)
    keys = moco._keys(x)
    torch.manual_seed(1)
    perm = torch.randperm(8)  # the permutation _keys draws
    expected = twin.key_head(twin.key_encoder(x[perm]))[torch.argsort(perm)]
    torch.testing.assert_close(keys, expected)
    unshuffled = twin.key_head(twin.key_encoder(x))  # train mode: running stats play no part
    assert not torch.allclose(keys, unshuffled, atol=1e-4), "keys should see other BN groups than the queries"
    with pytest.raises(ValueError, match=r"batch size per process \(6\) must be a multiple of bn_splits \(4\)"):
        build_method("moco_v2", arch="resnet10", width=4, queue_size=12, bn_splits=4).check_batch_size(6)
