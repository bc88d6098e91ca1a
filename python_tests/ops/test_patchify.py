"""patchify and its adjoint against torch.unfold."""

import importlib

import pytest
import torch

import csl_ext
from csl_ext.ops import patch_grid, patchify, patchify_reference, unpatchify
from csl_ext.ops.patchify import patchify_adjoint_reference

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")

# (H, W, p, s): overlapping, disjoint, gaps between patches, remainders, p = H.
GEOMETRIES = [(9, 11, 3, 2), (8, 8, 4, 4), (13, 10, 2, 5), (7, 7, 7, 1), (6, 9, 1, 1), (10, 12, 5, 3)]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8]


def _images(shape, dtype, device, layout):
    if dtype == torch.uint8:
        images = torch.randint(0, 256, shape, dtype=dtype, device=device)
    else:
        images = torch.randn(shape, dtype=dtype, device=device)
    if layout == "channels_last":
        return images.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # a crop of every other channel
        b, c, h, w = shape
        return _images((b, 2 * c, h + 1, w + 2), dtype, device, "contiguous")[:, ::2, 1:, 2:]
    return images


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h,w,p,s", GEOMETRIES)
def test_forward_matches_unfold(device, dtype, layout, h, w, p, s):
    images = _images((2, 3, h, w), dtype, device, layout)
    patches = patchify(images, p, s)
    assert patches.is_contiguous()
    assert patches.shape == (2, patch_grid(h, p, s), patch_grid(w, p, s), 3, p, p)
    assert torch.equal(patches, patchify_reference(images, p, s))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("h,w,p,s", GEOMETRIES)
def test_backward_matches_unfold(device, dtype, h, w, p, s):
    images = _images((2, 3, h, w), dtype, device, "strided").requires_grad_()
    upstream = torch.randn(2, patch_grid(h, p, s), patch_grid(w, p, s), 3, p, p, dtype=dtype, device=device)
    (grad,) = torch.autograd.grad(patchify(images, p, s), images, upstream)
    (want,) = torch.autograd.grad(patchify_reference(images.double(), p, s), images, upstream.double())
    # The adjoint accumulates in float32 for half and bfloat16: at most one
    # rounding of the sum, against unfold's float64 sum here.
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-6)
    torch.testing.assert_close(grad, want.to(dtype), atol=tol * 4, rtol=tol)


@pytest.mark.parametrize("h,w,p,s", GEOMETRIES)
def test_adjoint_reference_matches_the_op(device, h, w, p, s):
    """F.fold (the fallback's adjoint) against the compiled adjoint."""
    upstream = torch.randn(2, patch_grid(h, p, s), patch_grid(w, p, s), 3, p, p, dtype=torch.float64, device=device)
    torch.testing.assert_close(
        patchify_adjoint_reference(upstream, h, w, s), torch.ops.csl_ext.patchify_backward(upstream, h, w, p, s)
    )


def test_paper_grids():
    """7x7 grids: 256/64/32 (CPC v2 on ImageNet), 32/8/4 and 64/16/8."""
    for size, p, s in [(256, 64, 32), (32, 8, 4), (64, 16, 8)]:
        assert patchify(torch.zeros(1, 3, size, size, dtype=torch.uint8), p, s).shape == (1, 7, 7, 3, p, p)


def test_gradcheck_and_double_backward(device):
    images = torch.randn(1, 2, 7, 6, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: patchify(x, 3, 2), (images,))
    assert torch.autograd.gradgradcheck(lambda x: patchify(x, 3, 2), (images,))


def test_opcheck(device):
    images = torch.randn(2, 3, 9, 8, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.csl_ext.patchify, (images, 3, 2))
    grad = torch.randn(2, 4, 3, 3, 3, 3, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.csl_ext.patchify_backward, (grad, 9, 8, 3, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_no_host_sync(dtype):
    """Forward, backward and unpatchify never wait for the device."""
    images = torch.randn(4, 3, 32, 24, device="cuda", dtype=dtype, requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        patches = patchify(images, 8, 4)
        (grad,) = torch.autograd.grad(patches, images, torch.ones_like(patches))
        rebuilt = unpatchify(patches.detach(), 32, 24, 4)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.equal(patches, patchify_reference(images, 8, 4))
    torch.testing.assert_close(rebuilt, images.detach())  # 8 / 4 tiles the whole 32 x 24 image
    assert grad.dtype == dtype


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graph_capture():
    """patchify and its adjoint replay from a CUDA graph on new inputs."""
    static = torch.randn(2, 3, 20, 20, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graphs advises
        torch.ops.csl_ext.patchify_backward(patchify(static, 6, 2), 20, 20, 6, 2)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        patches = patchify(static, 6, 2)
        summed = torch.ops.csl_ext.patchify_backward(patches, 20, 20, 6, 2)
    fresh = torch.randn_like(static)
    static.copy_(fresh)
    graph.replay()
    assert torch.equal(patches, patchify_reference(fresh, 6, 2))
    (want,) = torch.autograd.grad(patchify_reference(fresh.requires_grad_(), 6, 2), fresh, patches)
    torch.testing.assert_close(summed, want)


def test_extension_has_parallel_regions():
    """at::parallel_for is a header template that runs serially unless the
    extension is compiled with OpenMP: then 2 threads never helped patchify."""
    with open(csl_ext._extension._C.__file__, "rb") as library:
        assert b"GOMP_parallel" in library.read()


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_split_the_work_exactly(threads):
    """Enough tasks for several dynamic chunks per thread: every patch row and
    pixel is written once, and the adjoint does not depend on the threads."""
    before = torch.get_num_threads()
    images = torch.randn(8, 3, 64, 64, dtype=torch.float64)
    upstream = torch.randn(8, 7, 7, 3, 16, 16, dtype=torch.float64)
    torch.set_num_threads(1)
    serial = torch.ops.csl_ext.patchify_backward(upstream, 64, 64, 16, 8)
    torch.set_num_threads(threads)
    try:
        patches = patchify(images, 16, 8)
        summed = torch.ops.csl_ext.patchify_backward(upstream, 64, 64, 16, 8)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(patches, patchify_reference(images, 16, 8))
    assert torch.equal(summed, serial)
    (want,) = torch.autograd.grad(patchify_reference(images.requires_grad_(), 16, 8), images, upstream)
    torch.testing.assert_close(summed, want)


def test_empty_batch(device):
    assert patchify(torch.zeros(0, 3, 8, 8, device=device), 4, 2).shape == (0, 3, 3, 3, 4, 4)


def test_bad_arguments():
    images = torch.zeros(1, 3, 8, 10)
    with pytest.raises(ValueError, match="patch_size must be <= the image's height"):
        patchify(images, 9, 1)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        patchify(images, 4, 0)
    with pytest.raises(ValueError, match="patch_size must be an int >= 1"):
        patchify(images, 2.0, 1)
    with pytest.raises(ValueError, match="images must have 4 dimensions"):
        patchify(images[0], 4, 2)
    with pytest.raises(ValueError, match="floating dtype or uint8"):
        patchify(images.long(), 4, 2)
    with pytest.raises(RuntimeError, match="grad_patches must have shape"):
        torch.ops.csl_ext.patchify_backward(torch.zeros(1, 4, 4, 3, 4, 4), 8, 10, 4, 2)  # nH = 3


def test_fallback_without_extension(monkeypatch):
    """Without the compiled op: the unfold reference, and unpatchify through
    autograd of the reference, with a warning."""
    module = importlib.import_module("csl_ext.ops.patchify")  # the package attribute is the function
    from csl_ext.ops import unpatchify

    images = torch.randn(2, 3, 10, 9, dtype=torch.float64)
    patches = patchify(images, 4, 3)
    want = unpatchify(patches * 2, 10, 9, 3)
    monkeypatch.setattr(module, "has_extension", lambda: False)
    monkeypatch.setattr(module, "warn_fallback", lambda op: None)
    assert torch.equal(patchify(images, 4, 3), patches)
    torch.testing.assert_close(unpatchify(patches * 2, 10, 9, 3), want)
    with torch.no_grad():  # YADIM's patch stage runs without autograd
        torch.testing.assert_close(unpatchify(patches * 2, 10, 9, 3), want)
    covered = images[:, :, :10, :7]  # 10 = 3*2 + 4 rows, 7 = 3 + 4 columns are covered
    torch.testing.assert_close(want[:, :, :10, :7], 2 * covered)
