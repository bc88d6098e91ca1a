// Schemas of the fused InfoNCE op (csl_ext::info_nce_lse and its helpers).
// Backends: cpu/info_nce_lse_kernel.cpp and cuda/info_nce_lse_cuda.cpp.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(csl_ext, m) {
  // lse_i = logsumexp_j over unmasked j of logit(scale * <a_i, b_j>).
  m.def(
      "info_nce_lse(Tensor anchors, Tensor candidates, float scale, "
      "float softcap, int mask, int block_size, int row_offset) -> Tensor");
  // The same lse plus the gradients of sum_i row_weight_i * lse_i, for losses
  // whose weight on every row is known in the forward (e.g. a mean).
  m.def(
      "info_nce_lse_with_grad(Tensor anchors, Tensor candidates, "
      "Tensor row_weight, float scale, float softcap, int mask, "
      "int block_size, int row_offset) -> (Tensor, Tensor, Tensor)");
  // Gradients of the lse w.r.t. anchors and candidates, recomputing tiles.
  m.def(
      "info_nce_lse_backward(Tensor grad_lse, Tensor anchors, "
      "Tensor candidates, Tensor lse, float scale, float softcap, int mask, "
      "int block_size, int row_offset, bool need_anchors, "
      "bool need_candidates) -> (Tensor, Tensor)");
}
