"""SimCLR's head as its authors' code, BYOL's per-view passes and own target
BN statistics, the optimiser choice and the short-run rules of SimCLR, MoCo
v2 and BYOL."""

import copy

import pytest
import torch
from torch import nn

from csl_ext.heads import ProjectionHead, ScaleOnlyBatchNorm1d, SimCLRProjectionHead
from csl_ext.methods import build_method
from csl_ext.methods.budget import ema_momentum, warmup_steps
from csl_ext.optim import LARS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = {"arch": "resnet10", "width": 4}


def test_simclr_head_is_the_reference_code_head():
    # google-research/simclr model_util.projection_head: hidden = feature size, BN on both
    # layers, the output layer with neither bias nor BN shift
    simclr = build_method("simclr", **SMALL, proj_dim=16)
    f = simclr.feature_dim
    layers = list(simclr.head.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, ScaleOnlyBatchNorm1d]
    assert (layers[0].in_features, layers[0].out_features, layers[0].bias) == (f, f, None)
    assert (layers[3].in_features, layers[3].out_features, layers[3].bias) == (f, 16, None)
    # no shift: a frozen zero bias that the optimiser never sees
    assert not layers[4].bias.requires_grad and torch.equal(layers[4].bias, torch.zeros(16))
    assert layers[4].weight.requires_grad and layers[4].weight.shape == (16,)
    assert all(p is not layers[4].bias for p in simclr.method_parameters())
    z = simclr.head(torch.randn(8, f))
    # train-mode BN without shift: every output feature has batch mean 0
    torch.testing.assert_close(z.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    assert build_method("simclr", **SMALL, hidden_dim=24).head.net[0].out_features == 24


def test_scale_only_batch_norm_resets_loads_and_converts():
    from csl_ext.nn.global_batch_norm import GlobalBatchNorm, convert_to_global_bn

    bn = ScaleOnlyBatchNorm1d(3)
    bn.weight.data.fill_(2.0)
    bn.reset_parameters()
    assert torch.equal(bn.weight, torch.ones(3)) and torch.equal(bn.bias, torch.zeros(3))
    head = SimCLRProjectionHead(6, 4)
    head.load_state_dict(copy.deepcopy(head.state_dict()))  # checkpoints round-trip
    x = torch.randn(5, 6)
    expected = head(x)
    convert_to_global_bn(head)  # what DDP training does to SimCLR
    assert isinstance(head.net[4], GlobalBatchNorm) and not head.net[4].bias.requires_grad
    torch.testing.assert_close(head(x), expected)
    plain = ProjectionHead(6, 5, 4, batch_norm=False)
    assert plain.net[0].bias is not None and plain.net[-1].bias is not None


def test_byol_passes_each_view_through_the_networks_alone():
    torch.manual_seed(0)
    byol = build_method("byol", **SMALL, hidden_dim=16, proj_dim=8)
    x1, x2 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16) * 3 + 1
    reference = copy.deepcopy(byol)
    _, h1 = byol.ssl_step((x1, x2))
    # batch norm statistics of view 1 alone: x2 (another scale and shift) plays no part
    torch.testing.assert_close(h1, reference.encoder(x1))


def test_byol_target_batch_norm_statistics_are_its_own():
    torch.manual_seed(0)
    byol = build_method("byol", **SMALL, hidden_dim=16, proj_dim=8)
    opt, _ = byol.configure_optimizer(batch_size=6, total_steps=10, steps_per_epoch=10)

    def step(i, x1, x2):
        loss, _ = byol.ssl_step((x1, x2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        byol.on_step_end(i, 10)

    step(0, torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16))  # online and target now differ
    target_before = copy.deepcopy(byol.target_encoder)
    x1, x2 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    step(1, x1, x2)
    # what the target's own forward passes (view 1, then view 2) leave in its buffers
    with torch.no_grad():
        target_before(x1)
        target_before(x2)
    for (name, mine), expected in zip(byol.target_encoder.named_buffers(), target_before.buffers()):
        torch.testing.assert_close(mine, expected, msg=name)
    means = [
        (t, o)
        for (n, t), o in zip(byol.target_encoder.named_buffers(), byol.encoder.buffers())
        if n.endswith("running_mean")
    ]
    assert any(not torch.allclose(t, o) for t, o in means), "target BN buffers were copied from the online network"


def test_byol_target_starts_as_a_copy_or_its_own_draw():
    torch.manual_seed(0)
    copied = build_method("byol", **SMALL, hidden_dim=16, proj_dim=8)
    torch.manual_seed(0)
    independent = build_method("byol", **SMALL, hidden_dim=16, proj_dim=8, target_init="independent")
    for online, target in ((copied.encoder, copied.target_encoder), (copied.head, copied.target_head)):
        assert all(torch.equal(p, t) for p, t in zip(online.parameters(), target.parameters()))
    # independent: the online network is drawn as with "copy"; the target differs from it
    assert all(torch.equal(p, q) for p, q in zip(copied.encoder.parameters(), independent.encoder.parameters()))
    convs = [
        (p, t) for p, t in zip(independent.encoder.parameters(), independent.target_encoder.parameters()) if p.dim() > 1
    ]
    assert convs and not any(torch.equal(p, t) for p, t in convs)
    assert not any(t.requires_grad for t in independent.target_encoder.parameters())
    assert not any(t.requires_grad for t in independent.target_head.parameters())
    with pytest.raises(ValueError, match="target_init must be one of"):
        build_method("byol", **SMALL, target_init="random")


@pytest.mark.parametrize("optimizer", ["lars", "sgd", "adam"])
def test_byol_predictor_lr_scale(optimizer):
    def rates(method, step):
        opt, sched = method.configure_optimizer(batch_size=256, total_steps=20, steps_per_epoch=2)
        for _ in range(step):
            opt.step()
            sched.step()
        predictor = {id(p) for p in method.predictor.parameters()}
        return {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}, predictor

    byol = build_method("byol", **SMALL, hidden_dim=16, proj_dim=8, optimizer=optimizer, predictor_lr_scale=10)
    for step in (0, 7):  # mid warm-up and mid cosine: the ratio holds throughout the schedule
        lr, predictor = rates(byol, step)
        assert set(lr) == {id(p) for p in byol.method_parameters()} and predictor <= set(lr)
        others = {v for k, v in lr.items() if k not in predictor}
        fast = {v for k, v in lr.items() if k in predictor}
        assert len(others) == 1 and len(fast) == 1 and fast.pop() == pytest.approx(10 * others.pop())
    # the default (the paper's): one rate for every parameter
    lr, _ = rates(build_method("byol", **SMALL, hidden_dim=16, proj_dim=8, optimizer=optimizer), 3)
    assert len(set(lr.values())) == 1
    # and the optimiser layout of checkpoints written before the keyword existed, so they resume
    opt, _ = build_method("byol", **SMALL, optimizer=optimizer).configure_optimizer(256, 20, 2)
    assert len(opt.param_groups) == (2 if optimizer == "lars" else 1)
    for bad in (0, -1.0, "10", True):
        with pytest.raises(ValueError, match="predictor_lr_scale must be a number > 0"):
            build_method("byol", **SMALL, predictor_lr_scale=bad)


def test_byol_predictor_lr_scale_moves_the_predictor_faster():
    # one plain SGD step from the same state and gradients: the predictor moves 10x as far, the rest as far
    torch.manual_seed(0)
    views = (torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16))
    steps = []
    for scale in (1.0, 10.0):
        torch.manual_seed(1)
        byol = build_method("byol", **SMALL, hidden_dim=16, proj_dim=8, optimizer="sgd", predictor_lr_scale=scale)
        opt, _ = byol.configure_optimizer(batch_size=256, total_steps=10, steps_per_epoch=10)
        before = [p.detach().clone() for p in byol.method_parameters()]
        byol.ssl_step(views)[0].backward()
        opt.step()
        steps.append([p.detach() - b for p, b in zip(byol.method_parameters(), before)])
    predictor = {id(p) for p in byol.predictor.parameters()}
    for p, slow, fast in zip(byol.method_parameters(), *steps):
        torch.testing.assert_close(fast, slow * (10.0 if id(p) in predictor else 1.0), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["simclr", "moco_v2", "byol"])
@pytest.mark.parametrize("optimizer,cls", [("lars", LARS), ("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)])
def test_every_method_takes_each_optimizer(name, optimizer, cls):
    extra = {"queue_size": 64} if name == "moco_v2" else {}
    method = build_method(name, **SMALL, optimizer=optimizer, **extra)
    opt, _ = method.configure_optimizer(batch_size=64, total_steps=20, steps_per_epoch=2)
    assert isinstance(opt, cls)
    assert opt.defaults["lr"] == pytest.approx(method.base_lr * 64 / 256)
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert params == {id(p) for p in method.method_parameters()}


def test_default_optimizers_are_the_papers():
    assert build_method("simclr", **SMALL).optimizer == "lars" and build_method("byol", **SMALL).optimizer == "lars"
    moco = build_method("moco_v2", **SMALL, queue_size=64)
    assert (moco.optimizer, moco.base_lr) == ("sgd", 0.03)
    assert build_method("simclr", **SMALL).base_lr == 0.3 and build_method("byol", **SMALL).base_lr == 0.2
    assert build_method("simclr", **SMALL, optimizer="adam").base_lr == 1e-3
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_method("byol", **SMALL, optimizer="rmsprop")


def test_short_run_rules():
    # SimCLR's 10 warm-up epochs of 5 steps in a 75-step run: capped at 10% of it
    assert warmup_steps(10, 5, 75) == 7 and warmup_steps(10, 5, 75, max_fraction=None) == 50
    assert warmup_steps(10, 100, 100_000) == 1000  # a paper-length run keeps its 10 epochs
    assert ema_momentum(0.999, 75) == pytest.approx(1 - 1 / 7.5)
    assert ema_momentum(0.999, 100_000) == 0.999 and ema_momentum(0.999, 75, None) == 0.999
    assert ema_momentum(0.99, 5) == 0.99  # a horizon under one step: nothing to cap


def test_moco_momentum_follows_the_run_length_and_byol_tau_does_not():
    moco = build_method("moco_v2", **SMALL, queue_size=64)
    moco.configure_optimizer(batch_size=64, total_steps=75, steps_per_epoch=5)
    assert moco.current_momentum == pytest.approx(1 - 1 / 7.5)
    moco.configure_optimizer(batch_size=64, total_steps=200_000, steps_per_epoch=5)
    assert moco.current_momentum == 0.999
    paper = build_method("moco_v2", **SMALL, queue_size=64, short_run_fraction=None)
    paper.configure_optimizer(batch_size=64, total_steps=75, steps_per_epoch=5)
    assert paper.current_momentum == 0.999
    # BYOL's target keeps the paper's tau_base in a short run too (docs/quality.md)
    byol = build_method("byol", **SMALL)
    byol.on_step_end(0, 75)
    assert byol.tau == pytest.approx(0.996)
    byol.on_step_end(75, 75)
    assert byol.tau == pytest.approx(1.0)


def test_simclr_warmup_is_capped_in_short_runs():
    simclr = build_method("simclr", **SMALL)
    _, sched = simclr.configure_optimizer(batch_size=256, total_steps=75, steps_per_epoch=5)
    factors = [sched.lr_lambdas[0](s) for s in range(10)]
    assert factors[6] == pytest.approx(1.0) and factors[0] == pytest.approx(1 / 7)


def _moco_loss_reference(q, k, negatives, temperature):
    """MoCo's InfoNCE with the logits written out: positive first, then the negatives."""
    q, k, negatives = (nn.functional.normalize(t, dim=1) for t in (q, k, negatives))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.T], 1) / temperature
    return nn.functional.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


@pytest.mark.parametrize("exclude", [True, False])
def test_moco_keeps_an_images_own_queued_keys_out_of_its_negatives(exclude):
    torch.manual_seed(0)
    moco = build_method("moco_v2", **SMALL, hidden_dim=16, proj_dim=8, queue_size=12, exclude_own_keys=exclude)
    views = [torch.rand(4, 3, 16, 16) for _ in range(2)]
    moco.training_step(views, None, torch.tensor([0, 1, 2, 3]))
    moco.training_step(views, None, torch.tensor([4, 5, 6, 7]))
    assert moco.queue_ids.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, -1, -1, -1, -1]
    queue_before = moco.queue.clone()
    ids = torch.tensor([9, 5, 1, 10])  # images 5 and 1 have keys in the queue
    moco.eval()  # no momentum update, no enqueue: the reference sees the same networks
    loss = moco.training_step(views, None, ids).ssl_loss
    q, k = moco.head(moco.encoder(views[0])), moco.key_head(moco.key_encoder(views[1]))
    keep = torch.tensor([i not in (5, 1) for i in range(12)]) if exclude else torch.ones(12, dtype=torch.bool)
    expected = _moco_loss_reference(q, k, queue_before[keep], moco.temperature)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # without ids (a caller outside the trainer) nothing is excluded
    unexcluded = _moco_loss_reference(q, k, queue_before, moco.temperature)
    torch.testing.assert_close(moco.training_step(views).ssl_loss, unexcluded, rtol=1e-5, atol=1e-6)


def test_moco_sample_ids_are_checked_and_old_checkpoints_load():
    moco = build_method("moco_v2", **SMALL, hidden_dim=16, proj_dim=8, queue_size=8)
    views = [torch.rand(4, 3, 16, 16) for _ in range(2)]
    with pytest.raises(ValueError, match="sample_ids must be an int64 tensor of shape \\(4,\\)"):
        moco.training_step(views, None, torch.arange(3))
    with pytest.raises(ValueError, match="sample_ids"):
        moco.training_step(views, None, torch.arange(4.0))
    moco.training_step(views, None, torch.arange(4))
    state = moco.state_dict()
    del state["queue_ids"]  # a checkpoint written before the ids were kept
    fresh = build_method("moco_v2", **SMALL, hidden_dim=16, proj_dim=8, queue_size=8)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.queue, moco.queue) and fresh.queue_ids.tolist() == [-1] * 8


def test_moco_warns_when_the_queue_outlives_the_key_encoders_memory():
    import warnings

    def configure(queue_size, momentum, total_steps, symmetric=False):
        moco = build_method(
            "moco_v2",
            **SMALL,
            hidden_dim=16,
            proj_dim=8,
            queue_size=queue_size,
            momentum=momentum,
            symmetric=symmetric,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            moco.configure_optimizer(batch_size=256, total_steps=total_steps, steps_per_epoch=5)
        return [str(w.message) for w in caught if "queue" in str(w.message)]

    # 75 steps: m is capped at 0.867 (memory 7.5 steps); 4 steps of keys is more than half of it
    (message,) = configure(1024, 0.9, 75)
    assert "queue_size=1024" in message and "last 4 steps" in message and "at most 768" in message
    assert configure(256, 0.9, 75) == []  # 1 step of keys
    assert configure(65536, 0.999, 10**6) == []  # the paper: 256 steps against a memory of 1000
    # 12 steps: memory 1.2 steps; one step of keys is the shortest queue there is, so no advice to shrink it
    assert configure(256, 0.9, 12) == []
    # symmetric: both views' keys join the queue, 512 a step at batch 256
    (message,) = configure(2048, 0.9, 75, symmetric=True)
    assert "last 4 steps" in message and "at most 1536" in message
    assert configure(512, 0.9, 75, symmetric=True) == []


def test_moco_symmetric_loss_adds_both_directions_and_enqueues_both_views_keys():
    torch.manual_seed(0)
    moco = build_method("moco_v2", **SMALL, hidden_dim=16, proj_dim=8, queue_size=16, symmetric=True)
    views = [torch.rand(4, 3, 16, 16) for _ in range(2)]
    moco.training_step(views, None, torch.arange(4))
    assert moco.queue_ids.tolist() == [0, 1, 2, 3, 0, 1, 2, 3] + [-1] * 8 and int(moco.queue_ptr) == 8
    with torch.no_grad():  # train-mode BN: the keys the step made, views[1]'s then views[0]'s
        keys = torch.cat([moco.key_head(moco.key_encoder(v)) for v in (views[1], views[0])])
    torch.testing.assert_close(moco.queue[:8], nn.functional.normalize(keys, dim=1), rtol=1e-5, atol=1e-6)

    queue_before = moco.queue.clone()
    moco.eval()  # no momentum update, no enqueue: the reference sees the same networks
    loss = moco.training_step(views).ssl_loss
    q1, q2 = (moco.head(moco.encoder(v)) for v in views)
    k1, k2 = (moco.key_head(moco.key_encoder(v)) for v in views)
    expected = _moco_loss_reference(q1, k2, queue_before, moco.temperature) + _moco_loss_reference(
        q2, k1, queue_before, moco.temperature
    )
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)

    # 2 x 4 keys a step: a queue of 12 would leave a partial slot
    with pytest.raises(ValueError, match=r"multiple of 2 x the global batch size \(8: symmetric"):
        build_method("moco_v2", **SMALL, queue_size=12, symmetric=True).check_batch_size(4)
    build_method("moco_v2", **SMALL, queue_size=12).check_batch_size(4)  # asymmetric: 4 keys a step
