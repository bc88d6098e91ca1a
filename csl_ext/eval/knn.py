"""Weighted k-nearest-neighbour classification on cosine similarity.

The non-parametric check of InstDisc [0] (also used by MoCo / DINO code): the
k training features most cosine-similar to a test feature vote for their
labels with weight exp(sim / T). No training, one hyper-parameter pair.

- [0]: InstDisc, Wu et al. 2018, https://arxiv.org/abs/1805.01978
"""

import torch
import torch.nn.functional as F

from csl_ext.eval._checks import as_features, as_labels, check_split


@torch.no_grad()
def knn_predict(
    train_x,
    train_y,
    test_x,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 256,
) -> torch.Tensor:
    """Predicted labels of a weighted kNN [0].

    Args:
        train_x: (N, F) training features; train_y: (N,) int labels >= 0.
        test_x: (M, F) query features.
        k: neighbours (>= 1); min(k, N) are used when N < k.
        temperature: T > 0 of the exp(sim / T) vote weights (0.07 in [0]).
        num_classes: C; default max(train_y) + 1.
        chunk_size: queries per similarity block, bounding memory to
            chunk_size x N similarities (e.g. 256 x 50k CIFAR-10 = 51 MB).

    Returns:
        (M,) int64 predictions (ties go to the smaller class index).

    Raises:
        ValueError: k < 1, temperature <= 0, or mismatched shapes.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    train_x = as_features(train_x, "train_x")
    test_x = as_features(test_x, "test_x").to(train_x.device)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train_x and test_x must have the same feature size, got {train_x.shape[1]} and {test_x.shape[1]}"
        )
    train_y = as_labels(train_y, train_x.shape[0], "train_y").to(train_x.device)
    c = int(train_y.max()) + 1 if num_classes is None else int(num_classes)
    if c < int(train_y.max()) + 1:
        raise ValueError(f"num_classes must exceed the largest label {int(train_y.max())}, got {num_classes}")
    k = min(k, train_x.shape[0])
    train_n = F.normalize(train_x, dim=1)  # N x F, unit rows: dot product = cosine
    test_n = F.normalize(test_x, dim=1)
    preds = []
    for i in range(0, test_n.shape[0], chunk_size):
        sim = test_n[i : i + chunk_size] @ train_n.T  # B x N
        top_sim, top_idx = sim.topk(k, dim=1)  # B x k
        weights = (top_sim / temperature).exp()  # B x k; max exp(1/0.07) ~ 1.6e6, safe in fp32
        votes = torch.zeros(sim.shape[0], c, device=sim.device)  # B x C
        votes.scatter_add_(1, train_y[top_idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 20, temperature: float = 0.07) -> float:
    """Test accuracy of the weighted kNN of `knn_predict`.

    Args:
        train_x: (N, F); train_y: (N,); test_x: (M, F); test_y: (M,).
        k, temperature: as in `knn_predict` (k=20 and T=0.07 as in [0]'s
            smaller-k setting; [0] uses k=200 on ImageNet).

    Returns:
        accuracy in [0, 1].

    Raises:
        ValueError: mismatched lengths / feature sizes, k < 1, temperature <= 0.

    Example:
        >>> knn_accuracy(torch.randn(100, 8), torch.randint(0, 3, (100,)), torch.randn(10, 8),
        ...              torch.randint(0, 3, (10,)), k=5)  # doctest: +SKIP
    """
    train_x, train_y, test_x, test_y = check_split(train_x, train_y, test_x, test_y)
    num_classes = int(torch.cat([train_y, test_y]).max()) + 1
    pred = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature, num_classes=num_classes)
    return float((pred == test_y).float().mean())
