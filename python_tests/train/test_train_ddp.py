"""Two real gloo processes: the trainer's DDP setup (init from the environment,
global batch norm, DistributedDataParallel) gives SimCLR the same gradients
as one process on the concatenated batch, and the Trainer runs under it."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csl_ext.methods import build_method
from csl_ext.nn.global_batch_norm import GlobalBatchNorm
from csl_ext.train import Trainer
from csl_ext.train.distributed_setup import init_distributed, wrap_model

WORLD = 2
KWARGS = {"arch": "resnet18", "width": 4, "hidden_dim": 16, "proj_dim": 8}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, x1, x2, train_config, results):
    # what torchrun sets
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    assert init_distributed()  # joins the group with gloo (no GPU)
    try:
        assert dist.get_backend() == "gloo"
        torch.manual_seed(0)
        method = build_method("simclr", **KWARGS)
        model = wrap_model(method, torch.device("cpu"))
        assert isinstance(model, torch.nn.parallel.DistributedDataParallel)
        assert any(isinstance(m, GlobalBatchNorm) for m in method.modules())
        n = x1.shape[0] // WORLD
        rows = slice(rank * n, (rank + 1) * n)  # this process's half of the global batch
        out = model((x1[rows], x2[rows]))
        out.loss.backward()  # DDP averages the gradients over the processes
        results[f"grads{rank}"] = {k: p.grad.clone() for k, p in method.encoder.named_parameters()}
        results[f"loss{rank}"] = out.loss.detach()

        # the Trainer in the same process group: equal weights on both ranks
        result = Trainer(train_config).fit()
        results[f"state{rank}"] = {k: v.clone() for k, v in result.method.state_dict().items()}
        results[f"status{rank}"] = (result.status, result.step)
    finally:
        dist.destroy_process_group()


def test_two_process_gradients_equal_one_process_on_the_whole_batch(tmp_path):
    from conftest import tiny_config

    torch.manual_seed(1)
    x1, x2 = torch.randn(2, 8, 3, 16, 16).unbind(0)  # global batch 8, two views
    cfg = tiny_config(tmp_path, "simclr", max_steps=3, epochs=1)
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(_free_port(), x1, x2, cfg, results), nprocs=WORLD, join=True)

    torch.manual_seed(0)
    method = build_method("simclr", **KWARGS)
    out = method((x1, x2))  # one process, whole batch, ordinary batch norm
    out.loss.backward()
    torch.testing.assert_close((results["loss0"] + results["loss1"]) / 2, out.loss.detach())
    for rank in range(WORLD):
        grads = results[f"grads{rank}"]
        for name, p in method.encoder.named_parameters():
            # float32 sums in another order (global BN over two processes): errors
            # ~1e-5 of the largest gradient; a wrong reduction is off by O(1)
            scale = p.grad.abs().max().item()
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-4 * scale, msg=f"rank {rank}: {name}")

    assert results["status0"] == results["status1"] == ("max_steps", 3)
    s0, s1 = results["state0"], results["state1"]
    for k in s0:
        if "running" in k or "num_batches" in k:
            continue  # batch norm statistics are per process
        assert torch.equal(s0[k], s1[k]), k
    assert (tmp_path / "checkpoint.pt").exists()


def _moco_worker(rank, port, train_config, results):
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    try:
        result = Trainer(train_config).fit()
        results[rank] = (result.status, result.method.queue_ids.clone(), result.method.queue.clone())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_process_moco_queues_every_processs_keys_with_their_image_ids(tmp_path):
    """MoCo under the trainer: the queue takes both processes' keys, each with
    the dataset index of its image (the ids its negatives are filtered by)."""
    from conftest import tiny_config

    # 32 images, global batch 8 over 2 processes, queue 32 (TINY): 3 steps fill 24 of 32 slots
    cfg = tiny_config(tmp_path, "moco_v2", max_steps=3, epochs=1)
    results = mp.Manager().dict()
    mp.spawn(_moco_worker, args=(_free_port(), cfg, results), nprocs=WORLD, join=True)
    (status0, ids0, queue0), (status1, ids1, queue1) = results[0], results[1]
    assert status0 == status1 == "max_steps"
    assert torch.equal(ids0, ids1) and torch.equal(queue0, queue1)  # one queue, the same on every process
    filled = ids0[:24]
    assert (ids0[24:] == -1).all()
    assert len(set(filled.tolist())) == 24 and filled.min() >= 0 and filled.max() < 32  # 24 distinct images of 32
