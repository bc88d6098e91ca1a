"""Process group and model wrapping from the environment torchrun sets.

torchrun (or any launcher) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; with WORLD_SIZE > 1 we join the group: NCCL on GPUs, gloo on the
CPU. Methods whose papers use global batch norm (SimCLR, BYOL) get their
BatchNorm layers converted before the DistributedDataParallel wrap.
"""

import os
import warnings

import torch
import torch.distributed as dist
from torch import nn

from csl_ext.nn.global_batch_norm import convert_to_global_bn

__all__ = ["init_distributed", "pick_device", "wrap_model"]


def init_distributed() -> bool:
    """Joins the process group the environment describes, if any.

    Returns:
        True when this call created the group (the caller destroys it at the
        end); False when there is no group to join (one process) or one was
        already initialised by the caller.
    """
    if dist.is_available() and dist.is_initialized():
        return False
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE > 1 but {missing} are not set: launch with torchrun")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def pick_device(requested: str | None = None) -> torch.device:
    """The device this process trains on: `requested`, else cuda:LOCAL_RANK
    when a GPU is present, else the CPU."""
    if requested is not None:
        dev = torch.device(requested)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def wrap_model(method: nn.Module, device: torch.device) -> nn.Module:
    """Moves `method` to `device`; in a process group converts its batch norm
    to global batch norm when ``method.global_bn`` and wraps it in DDP.

    Returns:
        The module to call for a training step (DDP or the method itself);
        the method itself stays reachable as ``wrapped.module`` under DDP.
    """
    method.to(device)
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return method
    if getattr(method, "global_bn", False):
        convert_to_global_bn(method)
    ids = [device.index] if device.type == "cuda" else None
    # broadcast_buffers=False: buffers that must agree (MoCo's queue) are built
    # from gathered keys on every process; BN running stats stay per process
    # (global BN keeps them equal anyway)
    with warnings.catch_warnings():
        # torch 2.14 deprecates broadcast_buffers, but its replacement still syncs
        # at init and has no per-forward "off" with the same meaning yet
        warnings.simplefilter("ignore", FutureWarning)
        return nn.parallel.DistributedDataParallel(
            method, device_ids=ids, broadcast_buffers=False, find_unused_parameters=method.find_unused_parameters
        )
