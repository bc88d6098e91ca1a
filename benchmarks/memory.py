"""Peak tensor memory of a call on CPU, from torch.profiler's allocation records.

Every allocation and free the call makes is recorded (profile_memory=True);
their running sum in time order peaks at the memory the call needed on top
of what existed before. Exact and independent of malloc's caching, unlike
resident-set measurements; tensors that outlive the call (gradients it
leaves on its inputs) are counted.
"""
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile


def peak_allocated_bytes(fn: Callable[[], object], setup: Callable[[], object] | None = None) -> int:
    """Peak of live tensor bytes allocated during `fn()`, after one warm-up call.

    Args:
        fn: the call to measure.
        setup: runs before the warm-up and before the recorded call, outside
            the record (e.g. drops the gradients the previous call left, whose
            frees would otherwise offset the new allocations).
    """
    if setup is not None:
        setup()
    fn()
    if setup is not None:
        setup()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = sorted(
        (event.start_ns(), event.nbytes()) for event in prof.profiler.kineto_results.events() if event.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak
