"""SplitBatchNorm equals one nn.BatchNorm2d per interleaved sub-batch, and
is plain batch norm in eval mode."""

import pytest
import torch
from torch import nn

from csl_ext.nn import SplitBatchNorm, convert_split_batchnorm


def _reference(x, bn: nn.BatchNorm2d, splits: int):
    """Each sub-batch x[s::splits] through its own copy of bn; returns the
    output in the input's order and the mean of the copies' running stats."""
    out = torch.empty_like(x)
    copies = []
    for s in range(splits):
        copy = type(bn)(bn.num_features, eps=bn.eps, momentum=bn.momentum).double()
        copy.load_state_dict(bn.state_dict())
        copy.weight, copy.bias = bn.weight, bn.bias  # shared parameters: gradients add up
        out[s::splits] = copy(x[s::splits])
        copies.append(copy)
    mean = torch.stack([c.running_mean for c in copies]).mean(0)
    var = torch.stack([c.running_var for c in copies]).mean(0)
    return out, mean, var


@pytest.mark.parametrize("spatial", [(3, 7), ()], ids=["NCHW", "NC"])
@pytest.mark.parametrize("splits", [1, 3])
def test_training_statistics_are_per_sub_batch(splits, spatial):
    torch.manual_seed(0)
    c = 5
    split = SplitBatchNorm(c, splits).double()
    with torch.no_grad():
        split.weight.uniform_(0.5, 2)
        split.bias.normal_()
        split.running_mean.normal_()
        split.running_var.uniform_(0.5, 2)
    plain = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(c).double()
    plain.load_state_dict(split.state_dict())  # same parameters and buffers
    x = (torch.randn(4 * splits, c, *spatial, dtype=torch.float64) * 3 + 1).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    grad = torch.randn_like(x)

    y = split(x)
    y.backward(grad)
    ref, ref_mean, ref_var = _reference(xr, plain, splits)
    ref.backward(grad)

    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(split.weight.grad, plain.weight.grad)
    torch.testing.assert_close(split.bias.grad, plain.bias.grad)
    torch.testing.assert_close(split.running_mean, ref_mean)
    torch.testing.assert_close(split.running_var, ref_var)
    assert int(split.num_batches_tracked) == 1


def test_differs_from_whole_batch_statistics_and_eval_is_plain_batch_norm():
    torch.manual_seed(1)
    split, plain = SplitBatchNorm(3, 2), nn.BatchNorm2d(3)
    x = torch.randn(8, 3, 4, 4)
    x[::2] += 5  # sub-batch 0 has another mean than sub-batch 1
    assert not torch.allclose(split(x), plain(x), atol=1e-3)
    split.eval(), plain.eval()
    plain.load_state_dict(split.state_dict())
    torch.testing.assert_close(split(x), plain(x))


def test_convert_keeps_state_and_checks_arguments():
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)),
        nn.Flatten(),
        nn.Linear(36, 5),
        nn.BatchNorm1d(5),
    )
    net[1].running_mean.normal_()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net = convert_split_batchnorm(net, 4)
    assert all(isinstance(m, SplitBatchNorm) for m in (net[1], net[2][1], net[5]))
    assert net[1].num_splits == 4
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, state[k])
    with pytest.raises(ValueError, match="batch size 6 is not a multiple of num_splits=4"):
        net(torch.randn(6, 3, 5, 5))
    with pytest.raises(ValueError, match="num_splits must be an integer >= 1"):
        SplitBatchNorm(4, 0)
    with pytest.raises(ValueError, match="affine=True"):
        SplitBatchNorm(4, 2, affine=False)
