"""Weighted k-nearest-neighbour classification on cosine similarity.

- [0]: Wu et al. 2018, Sec. 3.4 (k = 200, weights exp(s / 0.07)), https://arxiv.org/abs/1805.01978
"""
import torch
import torch.nn.functional as F


@torch.no_grad()
def weighted_knn(train_x, train_y, test_x, test_y, k: int = 200, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Test accuracy of a kNN vote weighted by exp(cos / temperature).

    Args:
        train_x: (N, D) features; train_y: (N,) labels.
        test_x: (M, D); test_y: (M,).
        k: neighbours (clipped to N); temperature > 0.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
    k = min(k, train_x.shape[0])
    classes = int(max(train_y.max(), test_y.max())) + 1
    train_x, test_x = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    correct = 0
    for start in range(0, test_x.shape[0], chunk):
        sim = test_x[start : start + chunk] @ train_x.T  # chunk x N
        top, idx = sim.topk(k, dim=1)  # chunk x k
        votes = torch.zeros(sim.shape[0], classes).scatter_add_(1, train_y[idx], (top / temperature).exp())
        correct += (votes.argmax(1) == test_y[start : start + chunk]).sum().item()
    return correct / test_x.shape[0]
