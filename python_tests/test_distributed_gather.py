"""Two real gloo processes: gathered losses equal one process on the
concatenated batch (the distributed softmax)."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csl_ext import distributed
from csl_ext.losses import info_nce, nt_xent

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, loss_name, batches, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        a, b = (x[rank].clone().requires_grad_(True) for x in batches)
        if loss_name == "nt_xent":
            loss = nt_xent(a, b, 0.3, gather=True)
        else:
            loss = info_nce(a, b, None, 0.3, gather=True)
        loss.backward()
        results[rank] = (loss.detach(), a.grad, b.grad)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("loss_name", ["nt_xent", "info_nce"])
def test_gathered_loss_equals_one_process_on_the_whole_batch(loss_name):
    n, d = 5, 7
    batches = [torch.randn(WORLD, n, d, dtype=torch.float64) for _ in range(2)]
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(_free_port(), loss_name, batches, results), nprocs=WORLD, join=True)

    a = torch.cat(list(batches[0])).requires_grad_(True)  # (WORLD * n, d)
    b = torch.cat(list(batches[1])).requires_grad_(True)
    fn = nt_xent if loss_name == "nt_xent" else (lambda x, y, t: info_nce(x, y, None, t))
    whole = fn(a, b, 0.3)
    whole.backward()
    # Each process's loss is the mean over its rows: their mean is the whole
    # loss. Its gradients are WORLD x the whole batch's (the gather sums every
    # process's loss), which DDP's gradient averaging divides back.
    losses = torch.stack([results[r][0] for r in range(WORLD)])
    torch.testing.assert_close(losses.mean(), whole.detach())
    for r in range(WORLD):
        rows = slice(r * n, (r + 1) * n)
        torch.testing.assert_close(results[r][1] / WORLD, a.grad[rows])
        torch.testing.assert_close(results[r][2] / WORLD, b.grad[rows])


def test_helpers_outside_a_process_group():
    x = torch.randn(3, 2)
    assert distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.gather(x) is x
    assert distributed.gather_no_grad(x) is x


def _unequal_worker(rank, port, errors):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        distributed.gather(torch.randn(3 + rank, 4))
    except ValueError as error:
        errors[rank] = str(error)
    finally:
        dist.destroy_process_group()


def test_unequal_batches_are_rejected_on_every_process():
    errors = mp.Manager().dict()
    mp.spawn(_unequal_worker, args=(_free_port(), errors), nprocs=WORLD, join=True)
    assert sorted(errors.keys()) == [0, 1]
    assert all("same batch size on every process" in e and "[3, 4]" in e for e in errors.values())
