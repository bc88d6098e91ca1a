"""Peak tensor memory of a call, from torch.profiler's allocation records on CPU
(from the CUDA caching allocator's peak statistics on a GPU).

Every allocation and free the call makes is recorded (profile_memory=True);
their running sum in time order peaks at the memory the call needed on top
of what existed before. Exact and independent of malloc's caching, unlike
resident-set measurements; tensors that outlive the call (gradients it
leaves on its inputs) are counted.
"""

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile


def peak_allocated_bytes(
    fn: Callable[[], object], setup: Callable[[], object] | None = None, device: torch.device | str = "cpu"
) -> int:
    """Peak of live tensor bytes allocated during `fn()`, after one warm-up call.

    Args:
        fn: the call to measure.
        setup: runs before the warm-up and before the recorded call, outside
            the record (e.g. drops the gradients the previous call left, whose
            frees would otherwise offset the new allocations).
        device: on CUDA, the caching allocator's peak statistics instead.
    """
    if setup is not None:
        setup()
    fn()
    if setup is not None:
        setup()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak
