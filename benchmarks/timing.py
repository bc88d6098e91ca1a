"""Ratios of run times measured in one process, robust to a loaded machine.

The variants of one comparison run in turn within each round (a, b, c, a,
b, c, ...), so a burst of load from other processes hits neighbouring
measurements alike; a ratio is the median over rounds of the per-round
ratio, not a ratio of medians taken minutes apart.
"""

import statistics
import time
from collections.abc import Callable

import torch


def interleaved_times(
    variants: dict[str, Callable[[], object]],
    rounds: int = 7,
    warmup: int = 1,
    threads: dict[str, int] | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Seconds per call of every variant, `rounds` calls each, interleaved.

    Args:
        variants: name -> a call with no arguments.
        rounds: timed calls per variant (>= 1).
        warmup: untimed rounds first (allocator, thread pool, caches).
        threads: name -> torch.set_num_threads for that variant (default: as set).
        device: on CUDA each call is timed between two synchronisations.

    Returns:
        name -> list of `rounds` times in seconds.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    before = torch.get_num_threads()
    times = {name: [] for name in variants}
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    try:
        for round_index in range(warmup + rounds):
            for name, call in variants.items():
                torch.set_num_threads((threads or {}).get(name, before))
                sync()
                start = time.perf_counter()
                call()
                sync()
                elapsed = time.perf_counter() - start
                if round_index >= warmup:
                    times[name].append(elapsed)
    finally:
        torch.set_num_threads(before)
    return times


def median_ratio(times: dict[str, list[float]], name: str, baseline: str) -> float:
    """Median over rounds of times[name][r] / times[baseline][r]."""
    return statistics.median(a / b for a, b in zip(times[name], times[baseline], strict=True))


def median_ms(times: dict[str, list[float]], name: str) -> float:
    return 1e3 * statistics.median(times[name])
