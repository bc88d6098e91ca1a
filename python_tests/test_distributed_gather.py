"""Two real gloo processes: gathered losses equal one process on the
concatenated batch (the distributed softmax), for the losses (nt_xent,
info_nce, amdim_nce, cpc_infonce) and for the AMDIM, CPC v2 and YADIM
methods."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csl_ext import distributed
from csl_ext.losses import amdim_nce, cpc_infonce, info_nce, nt_xent

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


CPC_OFFSETS = (1, 3)


def _map_losses(a, p, t, preds, gather):
    """AMDIM's loss + reg (anchors a against maps p) and CPC's loss."""
    loss, reg = amdim_nce(a, p, 2.0, 0.3, gather=gather)
    return loss + reg, cpc_infonce(preds, t, CPC_OFFSETS, 0.5, gather=gather)


def _map_worker(rank, port, inputs, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        local = [x[rank].clone() for x in inputs]
        if rank == 1:  # the two layouts of a map, gathered into one
            local[1] = local[1].contiguous(memory_format=torch.channels_last)
        local = [x.requires_grad_(True) for x in local]
        a, p, t, *preds = local
        amdim, cpc = _map_losses(a, p, t, preds, gather=True)
        (amdim + cpc).backward()
        results[rank] = (amdim.detach(), cpc.detach(), [x.grad for x in local])
    finally:
        dist.destroy_process_group()


def test_amdim_nce_and_cpc_infonce_gathered_equal_one_process_on_the_whole_batch():
    n, d, h, w = 3, 5, 4, 3
    inputs = [
        torch.randn(WORLD, n, d, dtype=torch.float64),  # AMDIM anchors
        torch.randn(WORLD, n, d, h, w, dtype=torch.float64),  # AMDIM maps
        torch.randn(WORLD, n, d, h, w, dtype=torch.float64),  # CPC targets
        *[torch.randn(WORLD, n, d, h - k, w, dtype=torch.float64) for k in CPC_OFFSETS],  # CPC predictions
    ]
    results = mp.Manager().dict()
    mp.spawn(_map_worker, args=(_free_port(), inputs, results), nprocs=WORLD, join=True)

    whole = [torch.cat(list(x)).requires_grad_(True) for x in inputs]
    a, p, t, *preds = whole
    amdim, cpc = _map_losses(a, p, t, preds, gather=False)
    (amdim + cpc).backward()
    # Each process's losses are means over its rows (AMDIM's regulariser over
    # its anchors' rows of scores): their mean is the whole batch's. The
    # gradients are WORLD x the whole batch's, as for nt_xent above.
    torch.testing.assert_close(torch.stack([results[r][0] for r in range(WORLD)]).mean(), amdim.detach())
    torch.testing.assert_close(torch.stack([results[r][1] for r in range(WORLD)]).mean(), cpc.detach())
    for r in range(WORLD):
        rows = slice(r * n, (r + 1) * n)
        for got, x in zip(results[r][2], whole):
            torch.testing.assert_close(got / WORLD, x.grad[rows])


# Small widths; AMDIM's comparisons take their anchors from the 1x1 map, so
# that no random source location differs between one and two processes.
METHODS = {
    "amdim": {"image_size": 32, "ndf": 4, "n_rkhs": 8, "depth": 1, "comparisons": "(-1:-2)+(-1:-3)"},
    "yadim": {"image_size": 32, "ndf": 4, "n_rkhs": 8, "depth": 1, "patch_stage": False},
    "cpc_v2": {"image_size": 16, "blocks": (1,), "width": 4, "context_blocks": 1, "offsets": (2, 3)},
}


def _method_views(name, batch):
    if name == "cpc_v2":  # one (B, 7, 7, 3, p, p) patch grid
        return (torch.randn(batch, 7, 7, 3, 4, 4),)
    return tuple(torch.randn(batch, 3, 32, 32) for _ in range(2))


def _method_worker(rank, port, views, results):
    from csl_ext.methods import build_method
    from csl_ext.nn import convert_to_global_bn

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        for name, kwargs in METHODS.items():
            torch.manual_seed(0)
            # AMDIM's embeddings are batch-normalised: with statistics over every
            # process's views, as one process over the whole batch has them
            method = convert_to_global_bn(build_method(name, **kwargs))
            n = views[name][0].shape[0] // WORLD
            out = method(tuple(v[rank * n : (rank + 1) * n] for v in views[name]))
            out.loss.backward()
            grads = {}
            for key, p in method.named_parameters():
                if p.grad is not None:  # averaged over the processes, as DDP does
                    dist.all_reduce(p.grad)
                    grads[key] = p.grad / WORLD
            results[(name, rank)] = (out.loss.detach(), grads)
    finally:
        dist.destroy_process_group()


def test_amdim_cpc_yadim_two_processes_equal_one_process_on_the_whole_batch():
    """Each method's step on two halves of a batch, gradients averaged over
    the processes (as DDP does), gives the gradients of one process on the
    whole batch: the negatives are gathered (without gather each process
    would see only its own half). The gradients are all-reduced by hand:
    YADIM leaves AMDIM's 7x7 and 5x5 heads unused, which DDP without
    find_unused_parameters does not reduce."""
    torch.manual_seed(1)
    views = {name: _method_views(name, 6) for name in METHODS}
    results = mp.Manager().dict()
    mp.spawn(_method_worker, args=(_free_port(), views, results), nprocs=WORLD, join=True)

    from csl_ext.methods import build_method

    for name, kwargs in METHODS.items():
        torch.manual_seed(0)
        method = build_method(name, **kwargs)
        out = method(views[name])
        out.loss.backward()
        losses = [results[(name, r)][0] for r in range(WORLD)]
        torch.testing.assert_close(sum(losses) / WORLD, out.loss.detach(), msg=name)
        # float32 sums in another order: errors ~1e-5 of the largest gradient
        # (a parameter whose exact gradient is 0, e.g. the target head's bias
        # under a softmax over every target, holds only such rounding noise)
        scale = max(p.grad.abs().max().item() for p in method.parameters() if p.grad is not None)
        for r in range(WORLD):
            grads = results[(name, r)][1]
            for key, p in method.named_parameters():
                if p.grad is not None:
                    torch.testing.assert_close(
                        grads[key], p.grad, rtol=1e-4, atol=1e-4 * scale, msg=f"{name} rank {r}: {key}"
                    )
