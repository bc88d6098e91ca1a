"""The fused InfoNCE op against its materialised reference."""

import pytest
import torch

import csl_ext
from csl_ext.ops import info_nce_lse, info_nce_lse_reference

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")

# (mask, N, M, block_size): odd sizes; "diag" needs N == M, "block" M % bs == 0.
MASK_CASES = [("none", 37, 53, 1), ("diag", 37, 37, 1), ("block", 11, 55, 5), ("block", 7, 63, 9)]
TOL = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}


def _inputs(n, m, d, dtype, device, contiguous=True, requires_grad=False):
    if contiguous:
        a = torch.randn(n, d, dtype=dtype, device=device)
        b = torch.randn(m, d, dtype=dtype, device=device)
    else:  # transposed storage and a column stride of 2
        a = torch.randn(d, n, dtype=dtype, device=device).T
        b = torch.randn(m, 2 * d, dtype=dtype, device=device)[:, ::2]
        assert not a.is_contiguous() and not b.is_contiguous()
    return a.requires_grad_(requires_grad), b.requires_grad_(requires_grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("softcap", [0.0, 3.0])
@pytest.mark.parametrize("mask,n,m,bs", MASK_CASES)
def test_forward_and_grads_match_reference(device, dtype, contiguous, softcap, mask, n, m, bs):
    kw = dict(scale=1.7, softcap=softcap, mask=mask, block_size=bs)
    a, b = _inputs(n, m, 19, dtype, device, contiguous, requires_grad=True)
    upstream = torch.rand(n, dtype=dtype, device=device)  # not uniform: a general backward
    lse = info_nce_lse(a, b, **kw)
    grads = torch.autograd.grad((lse * upstream).sum(), (a, b))
    ref = info_nce_lse_reference(a, b, **kw)
    ref_grads = torch.autograd.grad((ref * upstream).sum(), (a, b))
    torch.testing.assert_close(lse, ref, **TOL[dtype])
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("mask,n,m,bs", MASK_CASES)
def test_row_weight_path_matches_reference(device, uniform, mask, n, m, bs):
    """The forward that also computes gradients: exact for any upstream
    gradient, not only the one proportional to row_weight."""
    kw = dict(scale=0.9, softcap=2.0, mask=mask, block_size=bs)
    a, b = _inputs(n, m, 13, torch.float64, device, requires_grad=True)
    weight = torch.rand(n, dtype=torch.float64, device=device) + 0.5
    upstream = 0.37 * weight if uniform else torch.rand(n, dtype=torch.float64, device=device)
    lse = info_nce_lse(a, b, row_weight=weight, **kw)
    grads = torch.autograd.grad((lse * upstream).sum(), (a, b))
    ref = info_nce_lse_reference(a, b, **kw)
    ref_grads = torch.autograd.grad((ref * upstream).sum(), (a, b))
    torch.testing.assert_close(lse, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_row_offset_matches_reference(device):
    a, b = _inputs(6, 24, 5, torch.float64, device, requires_grad=True)
    for mask, bs, offset in [("diag", 1, 12), ("diag", 1, 18), ("block", 2, 5), ("block", 4, 3)]:
        kw = dict(scale=1.3, mask=mask, block_size=bs, row_offset=offset)
        torch.testing.assert_close(info_nce_lse(a, b, **kw), info_nce_lse_reference(a, b, **kw))
        assert torch.autograd.gradcheck(lambda x, y: info_nce_lse(x, y, **kw), (a, b))


@pytest.mark.parametrize("softcap", [0.0, 1.5])
@pytest.mark.parametrize("mask,n,m,bs", [("none", 5, 7, 1), ("diag", 5, 5, 1), ("block", 3, 9, 3)])
def test_gradcheck_float64(device, softcap, mask, n, m, bs):
    a, b = _inputs(n, m, 3, torch.float64, device, requires_grad=True)
    kw = dict(scale=0.8, softcap=softcap, mask=mask, block_size=bs)
    assert torch.autograd.gradcheck(lambda x, y: info_nce_lse(x, y, **kw), (a, b))
    weight = torch.full((n,), 0.25, dtype=torch.float64, device=device)
    assert torch.autograd.gradcheck(lambda x, y: info_nce_lse(x, y, row_weight=weight, **kw), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: info_nce_lse(x, y, row_weight=weight, **kw).mean(), (a, b))


def test_gradient_for_one_input_only(device):
    a, b = _inputs(9, 12, 4, torch.float64, device)
    a.requires_grad_(True)
    (grad_a,) = torch.autograd.grad(info_nce_lse(a, b, scale=2.0).sum(), a)
    (want,) = torch.autograd.grad(info_nce_lse_reference(a, b, scale=2.0).sum(), a)
    torch.testing.assert_close(grad_a, want)


def _mm_calls(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key in ("aten::addmm", "aten::addmm_", "aten::mm"))


def test_no_gemm_for_an_input_that_needs_no_grad():
    """Backward with only the anchors needing a gradient skips dB's GEMMs."""
    b = torch.randn(300, 8)
    both = torch.randn(40, 8, requires_grad=True), b.clone().requires_grad_(True)
    only_a = torch.randn(40, 8, requires_grad=True), b

    def backward(inputs):
        lse = info_nce_lse(*inputs)
        return lambda: lse.sum().backward()

    assert _mm_calls(backward(only_a)) < _mm_calls(backward(both))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_at_most_twice_eager(device, dtype):
    """flash-attention's rule: the fused op's error against an fp32
    reference is at most twice that of the eager op run in the same dtype."""
    a32, b32 = _inputs(64, 96, 32, torch.float32, device)
    a32, b32 = a32 / 3, b32 / 3
    want = info_nce_lse_reference(a32, b32, scale=2.0, mask="block", block_size=3)
    a, b = a32.to(dtype), b32.to(dtype)
    logits = (2.0 * (a @ b.T)).masked_fill(
        torch.arange(96, device=device)[None] // 3 == torch.arange(64, device=device)[:, None], float("-inf")
    )
    eager = torch.logsumexp(logits, 1).float()  # all in `dtype`
    fused = info_nce_lse(a, b, scale=2.0, mask="block", block_size=3)
    assert fused.dtype == torch.float32
    assert (fused - want).abs().max() <= 2 * (eager - want).abs().max() + 1e-6


def test_nothing_of_size_n_by_m_is_saved_for_backward():
    n, m, d = 64, 96, 8
    a, b = _inputs(n, m, d, torch.float32, "cpu", requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        plain = info_nce_lse(a, b, mask="none")
        fused = info_nce_lse(a, b, row_weight=torch.ones(n))
    assert saved, "no tensor was saved: the op would have no backward"
    assert max(saved) <= max(n, m) * d
    assert plain.grad_fn is not None and fused.grad_fn is not None


def test_deterministic(device):
    a, b = _inputs(300, 700, 16, torch.float32, device, requires_grad=True)
    results = []
    for _ in range(2):
        lse = info_nce_lse(a, b, scale=3.0, row_weight=torch.ones(300, device=device))
        results.append((lse, *torch.autograd.grad(lse.mean(), (a, b))))
    for x, y in zip(*results):
        assert torch.equal(x, y)


def test_many_tiles_match_reference():
    """More rows than one CPU tile holds (2^20 / M rows): the tile loop."""
    a, b = _inputs(600, 4000, 8, torch.float64, "cpu", requires_grad=True)
    lse = info_nce_lse(a, b, scale=0.5, row_weight=torch.ones(600, dtype=torch.float64))
    ref = info_nce_lse_reference(a, b, scale=0.5)
    torch.testing.assert_close(lse, ref)
    torch.testing.assert_close(torch.autograd.grad(lse.sum(), (a, b)), torch.autograd.grad(ref.sum(), (a, b)))


def test_empty_inputs(device):
    a = torch.randn(0, 4, device=device, requires_grad=True)
    b = torch.randn(5, 4, device=device, requires_grad=True)
    lse = info_nce_lse(a, b)
    assert lse.shape == (0,)
    lse.sum().backward()
    assert torch.equal(b.grad, torch.zeros_like(b))
    no_candidates = info_nce_lse(torch.randn(3, 4, device=device), torch.randn(0, 4, device=device))
    assert torch.equal(no_candidates, torch.full((3,), float("-inf"), device=device))


def test_fully_masked_row_is_minus_inf_with_zero_grad():
    a = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    lse = info_nce_lse(a, b, mask="diag")
    assert lse.item() == float("-inf")
    (grad_a,) = torch.autograd.grad(lse.sum(), a, allow_unused=True)
    assert torch.equal(grad_a, torch.zeros_like(a))


@pytest.mark.parametrize("mask,n,m,bs", [("none", 5, 7, 1), ("block", 3, 9, 3)])
def test_opcheck(device, mask, n, m, bs):
    a, b = _inputs(n, m, 4, torch.float32, device, requires_grad=True)
    mask_id = ("none", "diag", "block").index(mask)
    ops = torch.ops.csl_ext
    torch.library.opcheck(ops.info_nce_lse, (a, b, 1.5, 2.0, mask_id, bs, 0))
    weight = torch.ones(n, device=device)
    torch.library.opcheck(ops.info_nce_lse_with_grad, (a, b, weight, 1.5, 2.0, mask_id, bs, 0))
    lse = ops.info_nce_lse(a.detach(), b.detach(), 1.5, 2.0, mask_id, bs, 0)
    for need_a, need_b in [(True, True), (True, False), (False, True)]:
        torch.library.opcheck(
            ops.info_nce_lse_backward,
            (torch.rand(n, device=device), a.detach(), b.detach(), lse, 1.5, 2.0, mask_id, bs, 0, need_a, need_b),
        )


def test_torch_compile_traces_the_op():
    a, b = _inputs(8, 12, 4, torch.float32, "cpu", requires_grad=True)
    compiled = torch.compile(lambda x, y: info_nce_lse(x, y, scale=2.0).mean(), backend="aot_eager", fullgraph=True)
    got = compiled(a, b)
    got.backward()
    want = info_nce_lse_reference(a, b, scale=2.0).mean()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(a.grad, torch.autograd.grad(want, a)[0])


def test_double_backward_is_refused():
    a, b = _inputs(4, 6, 3, torch.float64, "cpu", requires_grad=True)
    (grad_a,) = torch.autograd.grad(info_nce_lse(a, b).sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        grad_a.sum().backward()


def test_cuda_build_registers_a_cuda_kernel():
    if not csl_ext._extension._C.with_cuda:
        pytest.skip("CPU-only build")
    for op in ("info_nce_lse", "info_nce_lse_with_grad", "info_nce_lse_backward"):
        assert csl_ext.has_cuda_kernels(op), op


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: info_nce_lse(torch.randn(3), torch.randn(3, 4)), "anchors must have 2 dimensions"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(3, 5)), "must share D"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(3, 4).double()), "same dtype"),
        (lambda: info_nce_lse(torch.randint(0, 3, (3, 4)), torch.randint(0, 3, (3, 4))), "floating dtype"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), mask="diag"), "needs N == M"),
        (
            lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), mask="diag", row_offset=3),
            "N \\+ row_offset <= M",
        ),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), mask="block", block_size=2), "divides M=5"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), mask="rows"), "mask must be one of"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), softcap=-1.0), "softcap"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), scale=float("nan")), "scale"),
        (lambda: info_nce_lse(torch.full((3, 4), float("nan")), torch.randn(5, 4)), "anchors contains NaN"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), row_weight=torch.ones(4)), "row_weight"),
        (lambda: info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), row_weight=-torch.ones(3)), "row_weight"),
    ],
)
def test_bad_input_names_the_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_compiled_op_checks_its_arguments_too():
    """Called directly, the C++ op raises a RuntimeError, not a crash."""
    with pytest.raises(RuntimeError, match="block_size"):
        torch.ops.csl_ext.info_nce_lse(torch.randn(3, 4), torch.randn(5, 4), 1.0, 0.0, 2, 2, 0)
    with pytest.raises(RuntimeError, match="2-D"):
        torch.ops.csl_ext.info_nce_lse(torch.randn(3), torch.randn(5, 4), 1.0, 0.0, 0, 1, 0)
