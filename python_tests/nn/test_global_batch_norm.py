"""GlobalBatchNorm in two real gloo processes equals nn.BatchNorm on the
concatenated batch: outputs, input gradients, weight gradients and running
statistics; csl_ext.distributed.all_reduce_sum sums values and gradients."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from csl_ext import distributed
from csl_ext.nn import GlobalBatchNorm, convert_to_global_bn

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, x, weights, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        # all_reduce_sum: the value is the sum over processes, and so is the gradient
        v = torch.full((3,), float(rank + 1), dtype=torch.float64, requires_grad=True)
        total = distributed.all_reduce_sum(v)
        (total * (rank + 1)).sum().backward()  # d(sum of both losses)/dv = 1 + 2 on each process
        bn = convert_to_global_bn(nn.Sequential(nn.BatchNorm2d(x.shape[2]).double()))[0]
        assert isinstance(bn, GlobalBatchNorm)
        xi = x[rank].clone().requires_grad_(True)
        y = bn(xi)
        (y * weights[rank]).sum().backward()
        results[rank] = (
            total.detach(),
            v.grad,
            y.detach(),
            xi.grad,
            bn.weight.grad,
            bn.bias.grad,
            bn.running_mean,
            bn.running_var,
        )
    finally:
        dist.destroy_process_group()


def test_global_batch_norm_equals_batch_norm_on_the_whole_batch():
    torch.manual_seed(0)
    n, c = 3, 4  # 3 images per process: the biased / unbiased variances differ visibly
    x = torch.randn(WORLD, n, c, 5, 6, dtype=torch.float64) * 2 + 1
    weights = torch.randn(WORLD, n, c, 5, 6, dtype=torch.float64)
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(_free_port(), x, weights, results), nprocs=WORLD, join=True)

    for r in range(WORLD):
        total, v_grad = results[r][:2]
        torch.testing.assert_close(total, torch.full((3,), 3.0, dtype=torch.float64))
        torch.testing.assert_close(v_grad, torch.full((3,), 3.0, dtype=torch.float64))

    bn = nn.BatchNorm2d(c).double()
    whole = torch.cat(list(x)).requires_grad_(True)
    y = bn(whole)
    (y * torch.cat(list(weights))).sum().backward()
    for r in range(WORLD):
        _, _, y_r, x_grad, w_grad, b_grad, running_mean, running_var = results[r]
        rows = slice(r * n, (r + 1) * n)
        torch.testing.assert_close(y_r, y.detach()[rows])
        # each process's input gradient: the whole loss's, as the statistics depend on every row
        torch.testing.assert_close(x_grad, whole.grad[rows])
        torch.testing.assert_close(running_mean, bn.running_mean)
        torch.testing.assert_close(running_var, bn.running_var)
    # weight / bias gradients of the per-process losses add up to the whole one (DDP averages them)
    torch.testing.assert_close(results[0][4] + results[1][4], bn.weight.grad)
    torch.testing.assert_close(results[0][5] + results[1][5], bn.bias.grad)


def test_outside_a_process_group_it_is_batch_norm():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    plain = nn.BatchNorm2d(3)
    converted = convert_to_global_bn(nn.Sequential(nn.BatchNorm2d(3)))[0]
    assert isinstance(converted, GlobalBatchNorm)
    torch.testing.assert_close(converted(x), plain(x))
    torch.testing.assert_close(converted.running_var, plain.running_var)
    assert distributed.all_reduce_sum(x) is x
