"""Weighted kNN (InstDisc, Wu et al. 2018) against a brute-force loop."""

import math

import pytest
import torch

from csl_ext.eval import knn_accuracy, knn_predict


def brute_force_knn(train_x, train_y, test_x, k, temperature, num_classes):
    """One query at a time: cosine to every training row, sort, exp(sim / T) votes."""
    preds = []
    for q in test_x.tolist():
        sims = []
        for j, t in enumerate(train_x.tolist()):
            dot = sum(a * b for a, b in zip(q, t))
            norm = math.sqrt(sum(a * a for a in q)) * math.sqrt(sum(b * b for b in t))
            sims.append((dot / norm, j))
        sims.sort(reverse=True)
        votes = [0.0] * num_classes
        for sim, j in sims[:k]:
            votes[int(train_y[j])] += math.exp(sim / temperature)
        preds.append(max(range(num_classes), key=lambda c: (votes[c], -c)))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,temperature", [(1, 0.07), (5, 0.07), (7, 0.5), (40, 1.0)])
def test_knn_matches_brute_force(k, temperature):
    g = torch.Generator().manual_seed(k)
    train_x, test_x = torch.randn(40, 6, generator=g), torch.randn(25, 6, generator=g)
    train_y = torch.randint(0, 4, (40,), generator=g)
    expected = brute_force_knn(train_x, train_y, test_x, k, temperature, 4)
    got = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature, num_classes=4, chunk_size=7)
    assert torch.equal(got, expected)
    test_y = torch.randint(0, 4, (25,), generator=g)
    acc = knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature)
    assert acc == pytest.approx(float((expected == test_y).float().mean()))


def test_knn_weights_matter():
    # one very close neighbour of class 1 outvotes two distant ones of class 0 at small T
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    train_y = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.3]])
    assert knn_predict(train_x, train_y, query, k=3, temperature=0.07).item() == 1
    assert knn_predict(train_x, train_y, query, k=3, temperature=100.0).item() == 0  # ~uniform votes


def test_knn_is_scale_invariant_and_clamps_k():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 3, generator=g), torch.randint(0, 2, (10,), generator=g)
    q = torch.randn(5, 3, generator=g)
    assert torch.equal(knn_predict(x, y, q, k=3), knn_predict(3 * x, y, 0.5 * q, k=3))
    assert torch.equal(knn_predict(x, y, q, k=100), knn_predict(x, y, q, k=10))  # k > N uses all N


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(k=0), "k"),
        (dict(k=2.5), "k"),
        (dict(temperature=0.0), "temperature"),
    ],
)
def test_knn_bad_hyper_parameters(kwargs, name):
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match=name):
        knn_accuracy(x, y, x, y, **kwargs)


def test_knn_bad_shapes():
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match="train_y"):
        knn_accuracy(x, y[:5], x, y)
    with pytest.raises(ValueError, match="test_y"):
        knn_accuracy(x, y, x, y[:3])
    with pytest.raises(ValueError, match="test_x"):
        knn_accuracy(x, y, torch.randn(8, 4), y)
    with pytest.raises(ValueError, match="train_x"):
        knn_accuracy(torch.randn(8), y, x, y)
