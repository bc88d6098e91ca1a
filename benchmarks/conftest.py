"""Shared benchmark helpers: peak extra memory of a call on CPU.

Peak memory is read from the kernel: /proc/self/clear_refs resets the
process's resident high-water mark (VmHWM), the call runs, and the peak is
VmHWM minus the resident size before the call. glibc's malloc is told to
serve every block over 64 KiB with mmap and to unmap it on free, so freed
tensors leave the resident set at once and one measurement does not hide
inside memory cached by an earlier one.
"""

import ctypes
import gc

import pytest

_M_MMAP_THRESHOLD = -3
try:
    ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
except OSError:  # not glibc: measurements stay meaningful but noisier
    pass


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def peak_extra_bytes(fn) -> int:
    """Peak resident bytes that `fn()` adds to the process (after a warm-up
    call, so one-time allocations of the libraries are not counted)."""
    fn()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current resident size
    before = _status_bytes("VmRSS")
    fn()
    return _status_bytes("VmHWM") - before


@pytest.fixture
def peak_memory():
    return peak_extra_bytes
