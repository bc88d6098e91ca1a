"""torch.distributed set-up from torchrun's environment variables.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; we
use NCCL on GPUs and gloo on CPU. Without them the run is single-process.
"""
import os

import torch
import torch.distributed as dist


def setup_distributed() -> tuple[int, int, torch.device]:
    """Initialises the process group if torchrun started us (or one is already
    initialised) and returns (rank, world_size, device)."""
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return rank, world, device


def all_true(flag: bool, device: torch.device) -> bool:
    """True when flag is True on every process (a collective: call it on all)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def any_true(flag: bool, device: torch.device) -> bool:
    """True when flag is True on some process (a collective: call it on all)."""
    return not all_true(not flag, device)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
