"""The CUDA build's flags keep the soft cap's tanh accurate (issue 10.15).

`--use_fast_math` makes nvcc emit `tanh.approx.f32` (about 5e-4 relative
error) for the tanh of the soft cap, and the float32 CUDA results would miss
the CPU's. This compiles the math the CPU and CUDA epilogues share to PTX
with setup.py's nvcc flags, no GPU needed, and reads the instructions. It
runs wherever nvcc is installed (CI builds the CUDA variant) and skips
elsewhere.
"""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NVCC = shutil.which("nvcc") or shutil.which("nvcc", path="/usr/local/cuda/bin")

# One kernel per shared header that calls the soft cap in float32.
KERNEL = """
#include "ops/info_nce_lse_math.h"
#include "ops/amdim_nce_math.h"
__global__ void softcap_kernel(float* x, float cap) {
  x[threadIdx.x] = csl_ext::info_nce_softcap(x[threadIdx.x], cap);
}
__global__ void softcap_grad_kernel(float* x, float cap) {
  x[threadIdx.x] = csl_ext::info_nce_softcap_grad(x[threadIdx.x], cap);
}
"""


def setup_nvcc_flags() -> list[str]:
    """NVCC_FLAGS as written in setup.py (read, not imported: importing runs setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "NVCC_FLAGS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no NVCC_FLAGS")


def ptx_of_softcap(tmp_path: Path, flags: list[str]) -> str:
    source = tmp_path / "softcap.cu"
    source.write_text(KERNEL)
    out = tmp_path / "softcap.ptx"
    subprocess.run(
        [NVCC, "-ptx", "-arch=sm_80", *flags, f"-I{ROOT / 'csrc'}", str(source), "-o", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out.read_text()


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
def test_setup_flags_compile_an_accurate_tanh(tmp_path):
    flags = setup_nvcc_flags()
    assert not any("fast_math" in f or f.startswith("--ftz") for f in flags), flags
    ptx = ptx_of_softcap(tmp_path, flags)
    assert ".entry" in ptx and "softcap_kernel" in ptx
    assert "tanh.approx" not in ptx


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
def test_fast_math_would_be_caught(tmp_path):
    """The check above can fail: with --use_fast_math the same source becomes tanh.approx.f32."""
    ptx = ptx_of_softcap(tmp_path, [*setup_nvcc_flags(), "--use_fast_math"])
    assert "tanh.approx.f32" in ptx
