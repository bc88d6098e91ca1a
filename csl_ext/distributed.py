"""torch.distributed helpers: rank / world size, gathers and sums across processes.

All collectives of csl_ext live here. `gather` and `all_reduce_sum` carry
gradients back to every process; `gather_no_grad` and `all_reduce_mean` do
NOT and say so.
"""

import torch
import torch.distributed as dist

__all__ = ["all_reduce_mean", "all_reduce_sum", "gather", "gather_no_grad", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 outside a process group."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes, 1 outside a process group."""
    return dist.get_world_size() if is_distributed() else 1


def _check_equal_batches(x: torch.Tensor) -> None:
    """all_gather needs the same batch on every process; say so clearly."""
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    if len({int(s) for s in sizes}) != 1:
        raise ValueError(
            f"gather needs the same batch size on every process, got {[int(s) for s in sizes]}: "
            "use drop_last=True in the DistributedSampler / DataLoader"
        )


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradient over processes and returns
    this process's slice: every process's loss reaches every input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.batch = x.shape[0]
        x = x.contiguous()  # e.g. a channels-last map: gathered in one layout
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts)  # (world * B, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad.narrow(0, rank() * ctx.batch, ctx.batch)


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenates x (B, ...) over processes in rank order, with gradient.

    Returns (world_size * B, ...); this process's slice starts at rank * B.
    Outside a process group it returns x itself.
    """
    if world_size() == 1:
        return x
    _check_equal_batches(x)
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Like `gather` but WITHOUT gradient: for tensors that need none (MoCo's
    keys for the queue, labels, features for kNN)."""
    if world_size() == 1:
        return x
    _check_equal_batches(x)
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts)


class _AllReduceSumWithGrad(torch.autograd.Function):
    """Sum over processes whose backward sums the incoming gradients too: the
    gradient of the sum of every process's loss reaches every input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of x (any shape) over processes, with gradient (the same convention
    as `gather`: DDP's mean over processes then gives the gradient of the
    global mean loss). E.g. global batch norm's statistics. Outside a process
    group it returns x itself."""
    if world_size() == 1:
        return x
    return _AllReduceSumWithGrad.apply(x)


@torch.no_grad()
def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of x over processes (no gradient), e.g. for logging a loss."""
    if world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x / world_size()
