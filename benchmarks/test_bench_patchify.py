"""patchify of 64 images of 3x256x256 into CPC v2's 7x7 grid of 64x64
patches (stride 32) on CPU, against the physical limit and the PyTorch ways,
on 1 and 2 threads.

    python -m pytest benchmarks/test_bench_patchify.py --benchmark-json=bench_patchify.json
    python benchmarks/report.py bench_patchify.json --baseline memcpy

On a shared machine prefer the interleaved ratios of the same variants,
``python -m benchmarks.patchify_ratios`` (docs/benchmarks.md).

Variants, each producing the same (64, 7, 7, 3, 64, 64) contiguous tensor
(patchify also allocates its output each call, so the copies below do too):
- csl_ext: csl_ext.ops.patchify.
- memcpy: a copy of a tensor of the output's size into a new tensor, the
  bytes patchify must write (the limit; `copy_into` reuses the destination).
- unfold: images.unfold(2).unfold(3).permute(...).contiguous().
- per_sample_F_unfold: F.unfold on each image, reshaped to the grid layout.
- adjoint: patchify's backward (float32), the (B, C, H, W) sum of the patches.
"""

import pytest
import torch
import torch.nn.functional as F

from csl_ext.ops import patchify

B, C, SIZE, PATCH, STRIDE = 64, 3, 256, 64, 32
GRID = (SIZE - PATCH) // STRIDE + 1  # 7


def per_sample_f_unfold(images):
    out = []
    for image in images:
        cols = F.unfold(image[None], PATCH, stride=STRIDE)  # 1 x C*p*p x nH*nW
        out.append(cols.view(C, PATCH, PATCH, GRID, GRID).permute(3, 4, 0, 1, 2).contiguous())
    return torch.stack(out)


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}thread")
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=["float32", "uint8"])
@pytest.mark.parametrize("variant", ["memcpy", "csl_ext", "adjoint", "copy_into", "unfold", "per_sample_F_unfold"])
def test_patchify(benchmark, threads, variant, dtype):
    if variant in ("per_sample_F_unfold", "adjoint") and dtype == torch.uint8:
        pytest.skip("F.unfold and the adjoint (a sum) take floating dtypes")
    torch.manual_seed(0)
    images = (torch.rand(B, C, SIZE, SIZE) * 255).to(dtype)
    source = torch.empty(B, GRID, GRID, C, PATCH, PATCH, dtype=dtype)
    source.copy_(patchify(images, PATCH, STRIDE))
    destination = torch.empty_like(source)
    run = {
        "csl_ext": lambda: patchify(images, PATCH, STRIDE),
        "memcpy": lambda: source.clone(),
        "copy_into": lambda: destination.copy_(source),
        "unfold": lambda: (
            images.unfold(2, PATCH, STRIDE).unfold(3, PATCH, STRIDE).permute(0, 2, 3, 1, 4, 5).contiguous()
        ),
        "per_sample_F_unfold": lambda: per_sample_f_unfold(images),
        "adjoint": lambda: torch.ops.csl_ext.patchify_backward(source, SIZE, SIZE, PATCH, STRIDE),
    }[variant]
    if variant != "adjoint":
        assert torch.equal(run(), source)
    dtype_name = str(dtype).split(".")[-1]
    benchmark.group = f"patchify {B}x{C}x{SIZE}x{SIZE} p={PATCH} s={STRIDE} {dtype_name} {threads} thread(s)"
    benchmark.extra_info["output_MiB"] = source.numel() * source.element_size() / 2**20
    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
