// Host entry points shared by the CPU and CUDA registrations: both bind the
// tiled driver to their own epilogue.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "info_nce_lse_tiled.h"

namespace csl_ext {

inline at::Tensor info_nce_lse_forward_kernel(
    const InfoNceEpilogue& epilogue, const at::Tensor& anchors,
    const at::Tensor& candidates, double scale, double softcap, int64_t mask,
    int64_t block_size, int64_t row_offset) {
  const auto params = info_nce_check_args(anchors, candidates, scale, softcap,
                                          mask, block_size, row_offset);
  return info_nce_lse_forward_tiled(anchors, candidates, params, epilogue);
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor>
info_nce_lse_with_grad_kernel(const InfoNceEpilogue& epilogue,
                              const at::Tensor& anchors,
                              const at::Tensor& candidates,
                              const at::Tensor& row_weight, double scale,
                              double softcap, int64_t mask, int64_t block_size,
                              int64_t row_offset) {
  const auto params = info_nce_check_args(anchors, candidates, scale, softcap,
                                          mask, block_size, row_offset);
  TORCH_CHECK(row_weight.device() == anchors.device(),
              "info_nce_lse: row_weight must be on ", anchors.device(),
              ", got ", row_weight.device());
  return info_nce_lse_with_grad_tiled(anchors, candidates, row_weight, params,
                                      epilogue);
}

inline std::tuple<at::Tensor, at::Tensor> info_nce_lse_backward_kernel(
    const InfoNceEpilogue& epilogue, const at::Tensor& grad_lse,
    const at::Tensor& anchors, const at::Tensor& candidates,
    const at::Tensor& lse, double scale, double softcap, int64_t mask,
    int64_t block_size, int64_t row_offset, bool need_anchors,
    bool need_candidates) {
  const auto params = info_nce_check_args(anchors, candidates, scale, softcap,
                                          mask, block_size, row_offset);
  TORCH_CHECK(grad_lse.device() == anchors.device() &&
                  lse.device() == anchors.device(),
              "info_nce_lse_backward: grad_lse and lse must be on ",
              anchors.device());
  return info_nce_lse_backward_tiled(grad_lse, anchors, candidates, lse,
                                     params, need_anchors, need_candidates,
                                     epilogue);
}

}  // namespace csl_ext
