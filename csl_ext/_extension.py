"""Loads the compiled ops (csl_ext._C) and says what was built."""

import warnings

import torch

try:
    from csl_ext import _C  # noqa: F401  (registers torch.ops.csl_ext.*)

    _IMPORT_ERROR = None
except ImportError as error:  # not built: the ops fall back to PyTorch
    _C = None
    _IMPORT_ERROR = error

_warned = set()


def has_extension() -> bool:
    """True when csl_ext._C was built and loaded."""
    return _C is not None


def has_cuda_kernels(op: str = "info_nce_lse") -> bool:
    """True when `torch.ops.csl_ext.<op>` has a CUDA kernel registered."""
    return has_extension() and torch._C._dispatch_has_kernel_for_dispatch_key(f"csl_ext::{op}", "CUDA")


def warn_fallback(op: str) -> None:
    """Warns once per op that the pure-PyTorch reference is used instead."""
    if op in _warned:
        return
    _warned.add(op)
    warnings.warn(
        f"csl_ext: the compiled extension is not available ({_IMPORT_ERROR}); "
        f"{op} falls back to its pure-PyTorch reference, which materialises "
        "its intermediates. Build it with `pip install --no-build-isolation .`.",
        RuntimeWarning,
        stacklevel=3,
    )
