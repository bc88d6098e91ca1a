"""Checks shared by the contrastive losses."""

import torch

from csl_ext.ops._checks import check_finite, check_positive, check_same, check_tensor


def check_views(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor, temperature: float) -> None:
    """Two (N, D) embeddings of the same images, finite; temperature > 0."""
    check_tensor(names[0], a, dim=2)
    check_tensor(names[1], b, dim=2)
    check_same(names, a, b)
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (N, D), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    check_positive("temperature", temperature)
    check_finite(names[0], a)
    check_finite(names[1], b)
