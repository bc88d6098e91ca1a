"""NT-Xent against SimCLR's Algorithm 1 written out term by term."""

import math

import pytest
import torch

from csl_ext.losses import NTXentLoss, nt_xent


def simclr_algorithm_1(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """Chen et al. 2020, Algorithm 1: views 2k-1 and 2k of image k; l(i, j) =
    -log exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau); mean over 2N terms."""
    n = z1.shape[0]
    views = [None] * (2 * n)
    for k in range(n):
        views[2 * k], views[2 * k + 1] = z1[k], z2[k]
    z = torch.stack([v / v.norm() for v in views])
    sim = z @ z.T

    def pair_loss(i, j):
        denom = sum(torch.exp(sim[i, k] / tau) for k in range(2 * n) if k != i)
        return -torch.log(torch.exp(sim[i, j] / tau) / denom)

    return sum(pair_loss(2 * k, 2 * k + 1) + pair_loss(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("n,d,tau", [(1, 3, 0.5), (7, 5, 0.1), (12, 19, 0.3)])
def test_matches_algorithm_1(device, n, d, tau):
    z1 = torch.randn(n, d, dtype=torch.float64, device=device, requires_grad=True)
    z2 = torch.randn(n, d, dtype=torch.float64, device=device, requires_grad=True)
    got = nt_xent(z1, z2, tau)
    want = simclr_algorithm_1(z1, z2, tau)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, (z1, z2)), torch.autograd.grad(want, (z1, z2)))


def test_gradcheck(device):
    z1 = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True)
    z2 = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.2), (z1, z2))


def test_non_contiguous_and_module(device):
    z1 = torch.randn(6, 16, device=device)[:, ::2]
    z2 = torch.randn(8, 6, device=device).T
    got = NTXentLoss(temperature=0.5)(z1, z2)
    torch.testing.assert_close(got, simclr_algorithm_1(z1, z2, 0.5).float())


def test_identical_orthogonal_views_reach_the_lower_bound():
    """Each view equal to its pair and orthogonal to the rest: the loss is
    -log(e^(1/t) / (e^(1/t) + 2N - 2)), a value computable by hand."""
    n, tau = 4, 0.25
    z = torch.eye(n, 8)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2))
    assert nt_xent(z, z, tau).item() == pytest.approx(expected, rel=1e-6)


def test_empty_batch_gives_zero_with_grad():
    z1 = torch.randn(0, 4, requires_grad=True)
    loss = nt_xent(z1, torch.randn(0, 4), 0.1)
    loss.backward()
    assert loss.item() == 0.0 and z1.grad.shape == (0, 4)


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.randn(4, 3), torch.randn(5, 3), 0.1), "same shape"),
        ((torch.randn(4, 3), torch.randn(4, 3), 0.0), "temperature must be a finite number > 0"),
        ((torch.randn(4, 3), torch.randn(4, 3), -1.0), "temperature"),
        ((torch.randn(4), torch.randn(4), 0.1), "z1 must have 2 dimensions"),
        ((torch.randn(4, 3), torch.full((4, 3), float("inf")), 0.1), "z2 contains NaN or inf"),
        ((torch.randn(4, 3), torch.randn(4, 3).double(), 0.1), "same dtype"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        nt_xent(*args)
