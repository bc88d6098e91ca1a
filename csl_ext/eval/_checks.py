"""Argument checks shared by the probes and the kNN (ValueError naming the argument)."""

import torch


def as_features(x, name: str) -> torch.Tensor:
    """(N, F) float features as a float32 CPU-or-device tensor; ValueError otherwise."""
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, F) with N, F >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    return x.float()


def as_labels(y, n: int, name: str) -> torch.Tensor:
    """(n,) int64 labels >= 0; ValueError on a wrong length, dtype or negative label."""
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    y = y.long()
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the features, got {tuple(y.shape)}")
    if bool((y < 0).any()):
        raise ValueError(f"{name} must be >= 0 (drop unlabelled -1 rows first), got min {int(y.min())}")
    return y


def check_split(train_x, train_y, test_x, test_y):
    """Validates a (train, test) pair of features/labels; returns them as tensors."""
    train_x, test_x = as_features(train_x, "train_x"), as_features(test_x, "test_x")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train_x and test_x must have the same feature size, got {train_x.shape[1]} and {test_x.shape[1]}"
        )
    train_y = as_labels(train_y, train_x.shape[0], "train_y")
    test_y = as_labels(test_y, test_x.shape[0], "test_y")
    return train_x, train_y, test_x.to(train_x.device), test_y.to(train_x.device)
