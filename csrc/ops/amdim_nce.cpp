// Schema of the fused AMDIM NCE op. Backends: cpu/amdim_nce_kernel.cpp and
// cuda/amdim_nce_cuda.cpp; the shared loop is amdim_nce_tiled.cpp.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(csl_ext, m) {
  // Anchor i (N, D) against candidates (M = N * block_size, D), raw scores
  // s = scale * <a_i, c_j>, logits l = tclip * tanh(s / tclip). Anchor i's
  // positives are block i (its own image's locations), its negatives every
  // other candidate. Per anchor row:
  //   loss_rows_i   = sum_{k in block i} softplus(lse_neg_i - l_ik)
  //   square_rows_i = sum_j s_ij^2
  // and, when compute_grad, the gradients of
  //   loss_weight * sum(loss_rows) + reg_weight * sum(square_rows)
  // w.r.t. anchors and candidates (in the compute dtype; else (0,) tensors).
  m.def(
      "amdim_nce(Tensor anchors, Tensor candidates, int block_size, "
      "float scale, float tclip, float loss_weight, float reg_weight, "
      "bool compute_grad) -> (Tensor, Tensor, Tensor, Tensor)");
}
