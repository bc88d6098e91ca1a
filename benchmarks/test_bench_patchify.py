"""patchify of 64 images of 3x256x256 into CPC v2's 7x7 grid of 64x64
patches (stride 32) on CPU, against the physical limit and the PyTorch ways.

    python -m pytest benchmarks/test_bench_patchify.py --benchmark-json=bench_patchify.json

Variants, each producing the same (64, 7, 7, 3, 64, 64) contiguous tensor
(patchify also allocates its output each call, so the copies below do too):
- csl_ext: csl_ext.ops.patchify.
- memcpy: a copy of a tensor of the output's size into a new tensor, the
  bytes patchify must write (the limit; `copy_into` reuses the destination).
- unfold: images.unfold(2).unfold(3).permute(...).contiguous().
- per_sample_F_unfold: F.unfold on each image, reshaped to the grid layout.
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("variant", ["csl_ext", "memcpy", "copy_into", "unfold", "per_sample_F_unfold"])
def test_patchify(benchmark, variant, dtype):
    if variant == "per_sample_F_unfold" and dtype == torch.uint8:
        pytest.skip("F.unfold has no uint8 kernel on CPU")
    torch.manual_seed(0)
    images = (torch.rand(B, C, SIZE, SIZE) * 255).to(dtype)
    source = torch.empty(B, GRID, GRID, C, PATCH, PATCH, dtype=dtype)
    source.copy_(patchify(images, PATCH, STRIDE))
    destination = torch.empty_like(source)
    run = {
        "csl_ext": lambda: patchify(images, PATCH, STRIDE),
        "memcpy": lambda: source.clone(),
        "copy_into": lambda: destination.copy_(source),
        "unfold": lambda: images.unfold(2, PATCH, STRIDE).unfold(3, PATCH, STRIDE).permute(0, 2, 3, 1, 4, 5).contiguous(),
        "per_sample_F_unfold": lambda: per_sample_f_unfold(images),
    }[variant]
    assert torch.equal(run(), source)
    benchmark.group = f"patchify {B}x{C}x{SIZE}x{SIZE} p={PATCH} s={STRIDE} {str(dtype).split('.')[-1]}"
    benchmark.extra_info["output_MiB"] = source.numel() * source.element_size() / 2**20
    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
