// Schema of the fused AMDIM NCE op. Backends: cpu/amdim_nce_kernel.cpp and
// cuda/amdim_nce_cuda.cpp; the shared loop is amdim_nce_tiled.cpp.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(csl_ext, m) {
  // Anchor i (N, D) against M = K * block_size candidates, given as rows
  // (M, D) or as maps (K, D, block_size) (e.g. a contiguous NCHW feature map,
  // read in place): raw scores s = scale * <a_i, c_j>, logits
  // l = tclip * tanh(s / tclip). Anchor i's positives are block
  // i + block_offset (its own image's locations), its negatives every other
  // candidate. Per anchor row:
  //   loss_rows_i   = sum_{k in own block} softplus(lse_neg_i - l_ik)
  //   square_rows_i = sum_j s_ij^2
  // and, when compute_grad, the gradients of
  //   loss_weight * sum(loss_rows) + reg_weight * sum(square_rows)
  // w.r.t. anchors and candidates (in the compute dtype, the candidates'
  // shape; else (0,) tensors). weight_factors, optional (2,) on the inputs'
  // device, multiplies loss_weight and reg_weight there (no host sync).
  m.def(
      "amdim_nce(Tensor anchors, Tensor candidates, Tensor? weight_factors, "
      "int block_size, "
      "int block_offset, float scale, float tclip, float loss_weight, "
      "float reg_weight, bool compute_grad) -> (Tensor, Tensor, Tensor, "
      "Tensor)");
}
