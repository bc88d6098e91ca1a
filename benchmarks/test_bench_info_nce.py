"""NT-Xent forward + backward on CPU: the fused op against materialised
implementations and against the GEMMs the op cannot avoid.

    pip install -r requirements-bench.txt   # lightly, for comparison only
    python -m pytest benchmarks/test_bench_info_nce.py --benchmark-json=bench_info_nce.json
    python benchmarks/report.py bench_info_nce.json

Variants, all computing the same loss and both gradients of (z1, z2):
- csl_ext: csl_ext.losses.nt_xent on the fused op.
- materialised: the same formula with the full 2N x 2N logits in PyTorch.
- lightly: lightly's NTXentLoss, a widely used materialised implementation.
- three_gemms: S = A.B^T, S.B and S^T.A of the logits' shape, the
  irreducible work of a forward + backward (a lower bound, not a loss).
"""

import pytest
import torch
import torch.nn.functional as F

from csl_ext.losses import nt_xent

D = 128
TEMPERATURE = 0.5
SIZES = [4096, 8192, 16384]  # 2N views


def materialised_nt_xent(z1, z2, temperature):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))  # 2N x 2N
    n = z1.shape[0]
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)


def _lightly_loss():
    lightly_loss = pytest.importorskip("lightly.loss")
    return lightly_loss.NTXentLoss(temperature=TEMPERATURE)


def _make(variant, two_n):
    n = two_n // 2
    z1 = torch.randn(n, D, requires_grad=True)
    z2 = torch.randn(n, D, requires_grad=True)
    if variant == "three_gemms":
        a, b = torch.randn(two_n, D), torch.randn(two_n, D)

        def run():
            s = a @ b.T
            s @ b
            s.T @ a

        return run
    loss_fn = {
        "csl_ext": lambda x, y: nt_xent(x, y, TEMPERATURE),
        "materialised": lambda x, y: materialised_nt_xent(x, y, TEMPERATURE),
        "lightly": _lightly_loss() if variant == "lightly" else None,
    }[variant]

    def run():
        z1.grad = z2.grad = None
        loss_fn(z1, z2).backward()

    return run


@pytest.mark.parametrize("two_n", SIZES)
@pytest.mark.parametrize("variant", ["csl_ext", "materialised", "lightly", "three_gemms"])
def test_nt_xent_forward_backward(benchmark, peak_memory, variant, two_n):
    run = _make(variant, two_n)
    benchmark.group = f"nt_xent fwd+bwd 2N={two_n} D={D}"
    benchmark.extra_info["peak_extra_MiB"] = peak_memory(run) / 2**20
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
