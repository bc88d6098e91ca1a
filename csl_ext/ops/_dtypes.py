"""The compute dtype of the fused ops, shared by their wrappers and fakes."""

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half and bfloat16 are accumulated (and their results returned) in
    float32; float32 and float64 in their own precision."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
