"""Argument checks shared by the op wrappers: clear errors naming the argument.

Checks of tensor *values* (finiteness, signs) read the data on the host: free
on CPU, a host-device synchronisation on a GPU. They run for CPU tensors and,
for tensors on other devices, only in debug mode (`set_debug_checks(True)` or
the environment variable CSL_EXT_DEBUG_CHECKS=1): the one switch of every
value check in csl_ext.ops and csl_ext.losses.
"""

import math
import os

import torch

_debug_checks = os.environ.get("CSL_EXT_DEBUG_CHECKS", "0") not in ("", "0")


def set_debug_checks(enabled: bool) -> None:
    """Turns the value checks on or off for tensors on a GPU (see above)."""
    global _debug_checks
    _debug_checks = bool(enabled)


def value_checks_enabled(value: torch.Tensor) -> bool:
    """True when a check may read `value` on the host: not while compiling (a
    data-dependent branch would break the graph), always on CPU, else only
    in debug mode (no host-device synchronisation by default)."""
    if torch.compiler.is_compiling():
        return False
    return value.device.type == "cpu" or _debug_checks


def check_tensor(name: str, value, *, dim: int | None = None, floating: bool = True) -> None:
    """Raises TypeError / ValueError unless `value` is a tensor of `dim` dims."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype (float16, bfloat16, float32, float64), got {value.dtype}")


def check_same(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    """Raises ValueError unless a and b share dtype and device."""
    if a.dtype != b.dtype:
        raise ValueError(f"{names[0]} and {names[1]} must have the same dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"{names[0]} and {names[1]} must be on the same device, got {a.device} and {b.device}")


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raises ValueError if `value` holds NaN or inf (when
    `value_checks_enabled`)."""
    if value.numel() == 0 or not value_checks_enabled(value):
        return
    # min and max are finite iff every entry is (NaN propagates): one pass
    # with no boolean temporary, ~10x cheaper than isfinite(value).all().
    # In memory order (e.g. channels-last maps), so that aminmax reads the
    # storage as it lies instead of copying it first.
    order = sorted(range(value.dim()), key=lambda i: -value.stride(i))
    dense = value.detach().permute(order)
    low, high = torch.aminmax(dense if dense.is_contiguous() else value.detach())
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf values")


def check_positive(name: str, value: float) -> None:
    """Raises ValueError unless value is a finite number > 0."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
