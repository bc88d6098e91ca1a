"""Comparison specs, the AMDIM / YADIM feature-map task and the CPC task."""

import pytest
import torch

import csl_ext
from csl_ext.losses import amdim_nce, cpc_infonce
from csl_ext.tasks import (
    COMPARISONS,
    Comparison,
    ContextNetwork,
    CPCTask,
    FeatureMapContrastiveTask,
    YADIMTask,
    parse_comparisons,
)

needs_ext = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")


def test_presets_parse():
    assert parse_comparisons("amdim", 3) == (Comparison(-1, -2), Comparison(-1, -3), Comparison(-2, -2))
    assert parse_comparisons("last", 3) == (Comparison(-1, -1),)
    assert parse_comparisons("last_random", 3) == (Comparison(-1, None),)
    assert parse_comparisons("same_level", 3) == (Comparison(-1, -1), Comparison(-2, -2), Comparison(-3, -3))
    assert parse_comparisons(" (0:2) + (-1:k~U) ", 3) == (Comparison(-3, -1), Comparison(-1, None))
    assert set(COMPARISONS) == {"amdim", "last", "last_random", "same_level"}


@pytest.mark.parametrize(
    "spec,match",
    [
        ("(-1:-4)", r"refers to map -4, but the encoder returns 3 maps"),
        ("(3:-1)", r"refers to map 3"),
        ("foo", r"cannot parse 'foo'"),
        ("(-1:-2)+", r"cannot parse ''"),
        ("(-1,-2)", r"cannot parse"),
        ("", "must not be empty"),
        (None, "must be a string"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_comparisons(spec, 3)
    if isinstance(spec, str) and spec:
        with pytest.raises(ValueError, match=match):
            FeatureMapContrastiveTask(spec)


def _maps(b=4, d=6, requires_grad=False):
    return [torch.randn(b, d, s, s, dtype=torch.float64, requires_grad=requires_grad) for s in (7, 5, 1)]


@needs_ext
def test_amdim_task_is_the_sum_of_its_comparisons():
    m1, m2 = _maps(), _maps()
    loss, reg = FeatureMapContrastiveTask("(-1:-2)+(-1:-3)", bidirectional=True)(m1, m2)
    a1, a2 = m1[-1].flatten(1), m2[-1].flatten(1)
    want = [amdim_nce(a1, m2[-2]), amdim_nce(a2, m1[-2]), amdim_nce(a1, m2[-3]), amdim_nce(a2, m1[-3])]
    torch.testing.assert_close(loss, sum(w[0] for w in want) / 2)
    torch.testing.assert_close(reg, sum(w[1] for w in want) / 2)


@needs_ext
def test_spatial_source_uses_one_random_location_per_image():
    m1, m2 = _maps(), _maps()
    task = FeatureMapContrastiveTask("(-2:-2)", bidirectional=False, generator=torch.Generator().manual_seed(3))
    loss, _ = task(m1, m2)
    index = torch.randint(25, (4,), generator=torch.Generator().manual_seed(3))
    anchor = m1[-2].flatten(2)[torch.arange(4), :, index]
    torch.testing.assert_close(loss, amdim_nce(anchor, m2[-2])[0])


@needs_ext
def test_yadim_and_random_target_and_gradients():
    m1, m2 = _maps(requires_grad=True), _maps(requires_grad=True)
    loss, reg = YADIMTask()(m1, m2)
    want = amdim_nce(m1[-1].flatten(1), m2[-1]), amdim_nce(m2[-1].flatten(1), m1[-1])
    torch.testing.assert_close(loss, (want[0][0] + want[1][0]) / 2)
    assert not list(YADIMTask().parameters())
    (loss + reg).backward()
    assert m1[-1].grad is not None and m1[0].grad is None
    loss, _ = FeatureMapContrastiveTask("last_random", generator=torch.Generator().manual_seed(0))(m1, m2)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="maps2"):
        YADIMTask()(m1, [m[:, :3] for m in m2])


def test_context_network_is_causal():
    net = ContextNetwork(8, num_blocks=3).double()
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    out = net(x)
    for i in range(6):
        y = x.clone()
        y[:, :, i + 1 :] = torch.randn_like(y[:, :, i + 1 :])
        torch.testing.assert_close(net(y)[:, :, : i + 1], out[:, :, : i + 1], rtol=0, atol=0)


@needs_ext
def test_cpc_task_matches_loss_on_its_heads():
    task = CPCTask(8, offsets=(1, 3), context_blocks=2).double()
    grid = torch.randn(3, 8, 5, 4, dtype=torch.float64, requires_grad=True)
    loss = task(grid)
    expected = 0.0
    for direction, g in (("down", grid), ("up", grid.flip(2))):  # "up": rows above, i.e. the flipped grid
        context = task.contexts[direction](g)
        heads = task.heads[direction]
        preds = [heads[0](context[:, :, :4]), heads[1](context[:, :, :2])]
        expected = expected + cpc_infonce(preds, task.target_head(g), (1, 3), 0.1)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in task.parameters())
    with pytest.raises(ValueError, match="taller than 3 rows"):
        task(torch.randn(1, 8, 3, 3, dtype=torch.float64))
