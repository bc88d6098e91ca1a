"""Argument checks shared by the op wrappers: clear errors naming the argument."""
import math

import torch


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
    """Raises ValueError if `value` holds NaN or inf (skipped while compiling,
    where a data-dependent branch would break the graph)."""
    if torch.compiler.is_compiling() or value.numel() == 0:
        return
    # min and max are finite iff every entry is (NaN propagates): one pass
    # with no boolean temporary, ~10x cheaper than isfinite(value).all().
    low, high = torch.aminmax(value.detach())
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf values")


def check_positive(name: str, value: float) -> None:
    """Raises ValueError unless value is a finite number > 0."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
