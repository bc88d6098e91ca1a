"""The paper's evaluation protocol and a linear probe on frozen features.

Falcon & Cho (2020), Sec. 5, following AMDIM: freeze the encoder and train
an MLP with one hidden layer of 1024 ReLU units on the labels; report test
accuracy. The linear probe is the same without the hidden layer.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
- [1]: AMDIM, Bachman et al. 2019, Sec. 4 (MLP and linear evaluation), https://arxiv.org/abs/1906.00910
"""
import torch
import torch.nn.functional as F
from torch import nn


def _check(train_x, train_y, test_x, test_y):
    for name, x in (("train_features", train_x), ("test_features", test_x)):
        if x.dim() != 2:
            raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_features and test_features must have the same D, got {train_x.shape[1]} and {test_x.shape[1]}")
    for name, x, y in (("train_labels", train_x, train_y), ("test_labels", test_x, test_y)):
        if y.shape != (x.shape[0],):
            raise ValueError(f"{name} must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if (train_y < 0).any():
        raise ValueError("train_labels must be >= 0 (labelled images only)")


def train_classifier(train_x, train_y, test_x, test_y, hidden: int | None = 1024, epochs: int = 100,
                     lr: float = 1e-3, weight_decay: float = 1e-5, batch_size: int = 256, seed: int = 0) -> float:
    """Trains a classifier on frozen features and returns the test accuracy.

    Features are standardised with the training set's mean and std (so that
    encoders whose features differ in scale, e.g. a random init, are compared
    fairly).

    Args:
        train_x: (N, D) features; train_y: (N,) labels 0..C-1.
        test_x: (M, D); test_y: (M,).
        hidden: 1024 (the paper's MLP) or None (a linear probe).
        epochs, lr, weight_decay, batch_size: Adam on the cross-entropy.
        seed: initialisation and shuffling.

    Returns:
        Test accuracy in [0, 1].
    """
    _check(train_x, train_y, test_x, test_y)
    g = torch.Generator().manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    d = train_x.shape[1]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Linear(d, classes) if hidden is None else nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    n = train_x.shape[0]
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=g).split(batch_size):
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        return (model(test_x).argmax(1) == test_y).float().mean().item()


def mlp_protocol(train_x, train_y, test_x, test_y, **kwargs) -> float:
    """The paper's protocol: an MLP with one hidden layer of 1024 ReLU units."""
    return train_classifier(train_x, train_y, test_x, test_y, hidden=1024, **kwargs)


def linear_probe(train_x, train_y, test_x, test_y, lr: float = 1e-2, **kwargs) -> float:
    """A linear classifier on the frozen features (Adam, a larger lr than the
    MLP's: a single layer on standardised features tolerates it)."""
    return train_classifier(train_x, train_y, test_x, test_y, hidden=None, lr=lr, **kwargs)
