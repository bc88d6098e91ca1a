"""MoCo's InfoNCE against the reference's logits + cross-entropy form."""

import pytest
import torch
import torch.nn.functional as F

from csl_ext.losses import InfoNCELoss, info_nce


def moco_reference(q, k, queue, tau):
    """MoCo Algorithm 1: l_pos = q.k (N x 1), l_neg = q.queue^T (N x K),
    logits = cat([l_pos, l_neg]) / tau, labels = 0."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    queue = F.normalize(queue, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / tau  # N x (1 + K)
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def in_batch_reference(q, k, tau):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return F.cross_entropy(q @ k.T / tau, torch.arange(q.shape[0], device=q.device))


@pytest.mark.parametrize("n,k,d", [(1, 5, 3), (9, 31, 7), (16, 64, 19)])
def test_queue_matches_moco(device, n, k, d):
    q = torch.randn(n, d, dtype=torch.float64, device=device, requires_grad=True)
    key = torch.randn(n, d, dtype=torch.float64, device=device, requires_grad=True)
    queue = torch.randn(k, d, dtype=torch.float64, device=device)
    got = info_nce(q, key, queue, 0.2)
    want = moco_reference(q, key, queue, 0.2)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, (q, key)), torch.autograd.grad(want, (q, key)))


def test_without_queue_uses_the_batch(device):
    q = torch.randn(11, 6, dtype=torch.float64, device=device, requires_grad=True)
    key = torch.randn(11, 6, dtype=torch.float64, device=device, requires_grad=True)
    got = InfoNCELoss(temperature=0.3)(q, key)
    want = in_batch_reference(q, key, 0.3)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, (q, key)), torch.autograd.grad(want, (q, key)))


def test_queue_gets_no_gradient():
    queue = torch.randn(8, 4, requires_grad=True)
    info_nce(torch.randn(3, 4, requires_grad=True), torch.randn(3, 4), queue).backward()
    assert queue.grad is None


def test_gradcheck():
    q = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    key = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    queue = torch.randn(6, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, queue, 0.5), (q, key))
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, None, 0.5), (q, key))


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.randn(4, 3), torch.randn(4, 3), torch.randn(8, 5)), "queue must have shape"),
        ((torch.randn(4, 3), torch.randn(4, 3), torch.randn(8)), "queue must have 2 dimensions"),
        ((torch.randn(4, 3), torch.randn(4, 3), torch.randn(8, 3).double()), "same dtype"),
        ((torch.randn(4, 3), torch.randn(3, 3), None), "same shape"),
        ((torch.randn(4, 3), torch.randn(4, 3), torch.full((8, 3), float("nan"))), "queue contains NaN"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        info_nce(*args)


def test_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.randn(4, 3), torch.randn(4, 3), None, temperature=0)
