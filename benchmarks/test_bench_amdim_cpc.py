"""AMDIM's NCE and CPC's multi-step InfoNCE, forward + backward on CPU: the
fused op against the materialised formulas.

    python -m pytest benchmarks/test_bench_amdim_cpc.py --benchmark-json=bench_amdim_cpc.json
    python benchmarks/report.py bench_amdim_cpc.json   # the lead's table printer, if present

Variants, each computing the same loss(es) and the gradients of all inputs:
- csl_ext: csl_ext.losses.amdim_nce / cpc_infonce on the fused op.
- materialised: for AMDIM, the op sequence of pl_bolts' AmdimNCELoss
  (pl_bolts/losses/self_supervised_learning.py, lightning-bolts 0.7.0: one
  (B, B*H*W) score matrix, float masks, a max-shifted sum of exp), fed as
  pl_bolts' task feeds it (the map permuted to (D, B*H*W)); pl_bolts itself
  is not installed here (it needs pytorch_lightning), so the benchmark
  carries the same formulation. For CPC, step by step with each step's
  (rows, B*H*W) logits and F.cross_entropy.
- gemms: the GEMMs of the logits' shape that a materialised forward +
  backward needs (three), a lower bound for comparison, not a loss.

Peak memory (extra_info["peak_extra_MiB"]): the highest sum of live tensor
bytes allocated by the call, from the CPU allocator's allocation and free
records in torch.profiler (profile_memory=True), in time order. It counts
every tensor the call creates (the gradients of the inputs included) and
nothing that existed before; it is exact and independent of malloc's
caching, unlike resident-set measurements. extra_info["working_MiB"] is the
same peak less the bytes of the inputs' gradients, which every
implementation must return: the memory the loss itself needs.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from csl_ext.losses import amdim_nce, cpc_infonce

# (B, D): AMDIM on CIFAR-10 (batch 200, n_rkhs 1024), where the (B, B*HW)
# scores (7.5 MiB at 7x7) are 5x smaller than the positives' gradient; and a
# larger batch with D = 256, where the scores dominate the memory.
AMDIM_SHAPES = {"cifar": (200, 1024), "large_batch": (512, 256)}
AMDIM_CASES = [("cifar", 7, "nchw"), ("cifar", 7, "channels_last"), ("cifar", 5, "nchw"), ("large_batch", 7, "nchw")]
CPC_B, CPC_D, CPC_GRID, CPC_OFFSETS = 64, 64, 7, tuple(range(1, 7))


def peak_allocated_bytes(fn, setup) -> int:
    """Peak of live tensor bytes allocated during `fn()` (after a warm-up).
    `setup()` runs first, outside the record: it drops the previous call's
    gradients, whose frees would otherwise offset the new allocations."""
    setup()
    fn()
    setup()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak


def gradient_bytes(run) -> int:
    """Bytes of the gradients that `run` leaves on its inputs."""
    return sum(t.grad.numel() * t.grad.element_size() for t in getattr(run, "inputs", ()) if t.grad is not None)


def _record_memory(benchmark, run, setup) -> None:
    peak = peak_allocated_bytes(run, setup)
    benchmark.extra_info["peak_extra_MiB"] = peak / 2**20
    benchmark.extra_info["working_MiB"] = (peak - gradient_bytes(run)) / 2**20


def materialised_amdim_nce(anchor, positives, tclip=10.0, reg_coef=0.05):
    """AMDIM's reference formulation: all B x B*HW scores at once, positive
    and negative masks as tensors, a max-shifted log-sum-exp."""
    b, d, h, w = positives.shape
    targets = positives.permute(1, 0, 2, 3).reshape(d, b * h * w)  # D x B*HW
    raw = (anchor @ targets).view(b, b, h * w) / math.sqrt(d)  # B x B x HW
    reg = reg_coef * raw.square().mean()
    scores = tclip * torch.tanh(raw / tclip)
    pos_mask = torch.eye(b, dtype=raw.dtype).unsqueeze(2).expand(b, b, h * w)
    neg_mask = 1.0 - pos_mask
    pos = (pos_mask * scores).sum(1)  # B x HW
    neg = (neg_mask * scores - tclip * pos_mask).reshape(b, -1)  # positives pushed down
    neg_mask = neg_mask.reshape(b, -1)
    shift = neg.max(1, keepdim=True)[0]
    neg_sumexp = (neg_mask * torch.exp(neg - shift)).sum(1, keepdim=True)
    log_denominator = torch.log(torch.exp(pos - shift) + neg_sumexp)
    return -((pos - shift) - log_denominator).mean(), reg


def materialised_cpc_infonce(preds, targets, offsets):
    """Step by step: each step's logits against all targets, F.cross_entropy."""
    b, d, h, w = targets.shape
    flat = targets.permute(0, 2, 3, 1).reshape(-1, d)
    index = torch.arange(b * h * w).view(b, h, w)
    loss = 0.0
    for pred, k in zip(preds, offsets):
        logits = pred.permute(0, 2, 3, 1).reshape(-1, d) @ flat.T
        loss = loss + F.cross_entropy(logits, index[:, k:].reshape(-1))
    return loss


def _amdim_run(variant, grid, layout, shape="cifar"):
    """(run, setup): run computes the loss and the gradients; setup drops them."""
    torch.manual_seed(0)
    b, d = AMDIM_SHAPES[shape]
    anchor = torch.randn(b, d, requires_grad=True)
    positives = torch.randn(b, d, grid, grid)
    if layout == "channels_last":
        positives = positives.contiguous(memory_format=torch.channels_last)
    positives.requires_grad_()
    if variant == "gemms":
        a, c = anchor.detach(), positives.detach().flatten(2).transpose(1, 2).reshape(-1, d).contiguous()

        def run():
            s = a @ c.T
            s @ c
            s.T @ a

        return run, lambda: None
    loss_fn = amdim_nce if variant == "csl_ext" else materialised_amdim_nce

    def run():
        loss, reg = loss_fn(anchor, positives)
        (loss + reg).backward()

    def setup():
        anchor.grad = positives.grad = None

    run.inputs = (anchor, positives)
    return run, setup


def _cpc_run(variant):
    torch.manual_seed(0)
    targets = torch.randn(CPC_B, CPC_D, CPC_GRID, CPC_GRID, requires_grad=True)
    preds = [torch.randn(CPC_B, CPC_D, CPC_GRID - k, CPC_GRID, requires_grad=True) for k in CPC_OFFSETS]
    if variant == "gemms":
        rows = sum(p.shape[0] * p.shape[2] * p.shape[3] for p in preds)
        a, c = torch.randn(rows, CPC_D), torch.randn(CPC_B * CPC_GRID**2, CPC_D)

        def run():
            s = a @ c.T
            s @ c
            s.T @ a

        return run, lambda: None

    def setup():
        for t in (targets, *preds):
            t.grad = None

    def run():
        if variant == "csl_ext":
            cpc_infonce(preds, targets, CPC_OFFSETS).backward()
        else:
            materialised_cpc_infonce(preds, targets, CPC_OFFSETS).backward()

    run.inputs = (targets, *preds)
    return run, setup


@pytest.mark.parametrize("shape,grid,layout", AMDIM_CASES)
@pytest.mark.parametrize("variant", ["csl_ext", "materialised", "gemms"])
def test_amdim_nce_forward_backward(benchmark, variant, shape, grid, layout):
    run, setup = _amdim_run(variant, grid, layout, shape)
    b, d = AMDIM_SHAPES[shape]
    benchmark.group = f"amdim_nce fwd+bwd B={b} D={d} {grid}x{grid} {layout}"
    _record_memory(benchmark, run, setup)
    benchmark.pedantic(run, setup=setup, rounds=9, warmup_rounds=1)


@pytest.mark.parametrize("variant", ["csl_ext", "materialised", "gemms"])
def test_cpc_infonce_forward_backward(benchmark, variant):
    run, setup = _cpc_run(variant)
    benchmark.group = f"cpc_infonce fwd+bwd B={CPC_B} D={CPC_D} {CPC_GRID}x{CPC_GRID} offsets 1..6"
    _record_memory(benchmark, run, setup)
    benchmark.pedantic(run, setup=setup, rounds=9, warmup_rounds=1)


def interleaved(cases, rounds: int = 15) -> dict:
    """Best time of each case over `rounds`, the cases run in turn within
    each round: on a shared machine a burst of load then hits every case
    alike, so the ratios of the minima stay meaningful."""
    import time

    best = {name: float("inf") for name in cases}
    for run, setup in cases.values():
        setup()
        run()  # warm-up
    for _ in range(rounds):
        for name, (run, setup) in cases.items():
            setup()
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(threads=(1, 2), rounds: int = 15) -> None:
    """Interleaved minima and peaks at each thread count, as one table."""
    print(
        "| case | threads | csl_ext (ms) | materialised (ms) | gemms (ms) | csl_ext / gemms "
        "| speed-up over materialised | peak ratio | working ratio |\n|---|---|---|---|---|---|---|---|---|"
    )
    suites = {
        f"amdim_nce B={AMDIM_SHAPES[s][0]} D={AMDIM_SHAPES[s][1]} {g}x{g} {lay}": lambda s=s, g=g, lay=lay: {
            v: _amdim_run(v, g, lay, s) for v in ("csl_ext", "materialised", "gemms")
        }
        for s, g, lay in AMDIM_CASES
    }
    suites[f"cpc_infonce B={CPC_B} D={CPC_D} {CPC_GRID}x{CPC_GRID} offsets 1..6"] = lambda: {
        v: _cpc_run(v) for v in ("csl_ext", "materialised", "gemms")
    }
    for title, make in suites.items():
        cases = make()
        peaks = {name: peak_allocated_bytes(*case) for name, case in cases.items()}
        working = {name: peaks[name] - gradient_bytes(case[0]) for name, case in cases.items()}
        for count in threads:
            torch.set_num_threads(count)
            best = interleaved(cases, rounds)
            print(
                f"| {title} | {count} | {best['csl_ext'] * 1e3:.1f} | {best['materialised'] * 1e3:.1f} "
                f"| {best['gemms'] * 1e3:.1f} | {best['csl_ext'] / best['gemms']:.2f} "
                f"| {best['materialised'] / best['csl_ext']:.2f} | {peaks['csl_ext'] / peaks['materialised']:.3f} "
                f"| {working['csl_ext'] / working['materialised']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    # PYTHONPATH=. python benchmarks/test_bench_amdim_cpc.py [rounds]: every
    # case at 1 and 2 threads, the variants interleaved within each round.
    import sys

    main(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 15)
