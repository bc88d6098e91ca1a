"""A 2-process gloo DDP step of SimCLR (global BN, negatives gathered across
processes) gives the same gradients as one process on the concatenated batch."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csl_ext.methods import build_method
from csl_ext.methods.global_bn import convert_to_global_bn

KW = dict(arch="resnet10", width=4, hidden_dim=32, proj_dim=16, temperature=0.5)
N = 8  # global batch


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, 3, 16, 16, generator=g), torch.randn(N, 3, 16, 16, generator=g)


def _model():
    torch.manual_seed(0)
    return convert_to_global_bn(build_method("simclr", **KW))


def _grads(model):
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model()
        ddp = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
        x1, x2 = _inputs()
        part = slice(rank * N // world, (rank + 1) * N // world)
        ddp((x1[part], x2[part])).loss.backward()
        if rank == 0:
            torch.save(_grads(model), out)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gradients_equal_one_process_on_the_whole_batch(tmp_path):
    out = str(tmp_path / "grads.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp_grads = torch.load(out)
    model = _model()
    x1, x2 = _inputs()
    model((x1, x2)).loss.backward()
    single = _grads(model)
    assert ddp_grads.keys() == single.keys() and len(single) > 10
    for k in single:
        torch.testing.assert_close(ddp_grads[k], single[k], rtol=1e-4, atol=1e-6, msg=lambda m: f"{k}: {m}")
    # non-trivial gradients (an all-zero match would prove nothing)
    assert any(not torch.allclose(single[k], torch.zeros_like(single[k])) for k in single)
