// Schemas of the patchify op (CPC v2's grid of overlapping patches) and of
// its adjoint. Backends: cpu/patchify_kernel.cpp, cuda/patchify_cuda.cpp.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(csl_ext, m) {
  // (B, C, H, W) -> (B, nH, nW, C, p, p), nH = (H - p) / stride + 1. A copy:
  // any dtype (uint8 images included).
  m.def("patchify(Tensor images, int patch_size, int stride) -> Tensor");
  // The adjoint: each patch's gradient summed back into the (B, C, H, W)
  // image where the patches overlap. Floating dtypes.
  m.def(
      "patchify_backward(Tensor grad_patches, int height, int width, "
      "int patch_size, int stride) -> Tensor");
}
