// Host entry points of the fused InfoNCE op, shared by the CPU and CUDA
// registrations: checks (before the device guard, so that a device mismatch
// gets its own message), device guard, the tiled driver bound to the
// device's epilogue:
//   TORCH_LIBRARY_IMPL(csl_ext, CPU, m) {
//     InfoNceRegistration<&kCpuEpilogue>::register_impls(m);
//   }
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <tuple>

#include "info_nce_lse_checks.h"
#include "info_nce_lse_tiled.h"

namespace csl_ext {

template <const InfoNceEpilogue* kEpilogue>
struct InfoNceRegistration {
  static at::Tensor forward(const at::Tensor& anchors,
                            const at::Tensor& candidates, double scale,
                            double softcap, int64_t mask, int64_t block_size,
                            int64_t row_offset) {
    const auto params = info_nce_check_args(anchors, candidates, scale, softcap,
                                            mask, block_size, row_offset);
    const c10::DeviceGuard guard(anchors.device());
    return info_nce_lse_forward_tiled(anchors, candidates, params, *kEpilogue);
  }

  static std::tuple<at::Tensor, at::Tensor, at::Tensor> with_grad(
      const at::Tensor& anchors, const at::Tensor& candidates,
      const at::Tensor& row_weight, double scale, double softcap, int64_t mask,
      int64_t block_size, int64_t row_offset) {
    const auto params = info_nce_check_args(anchors, candidates, scale, softcap,
                                            mask, block_size, row_offset);
    const c10::DeviceGuard guard(anchors.device());
    TORCH_CHECK(row_weight.device() == anchors.device(),
                "info_nce_lse: row_weight must be on ", anchors.device(),
                ", got ", row_weight.device());
    return info_nce_lse_with_grad_tiled(anchors, candidates, row_weight, params,
                                        *kEpilogue);
  }

  static std::tuple<at::Tensor, at::Tensor> backward(
      const at::Tensor& grad_lse, const at::Tensor& anchors,
      const at::Tensor& candidates, const at::Tensor& lse, double scale,
      double softcap, int64_t mask, int64_t block_size, int64_t row_offset,
      bool need_anchors, bool need_candidates) {
    const auto params = info_nce_check_args(anchors, candidates, scale, softcap,
                                            mask, block_size, row_offset);
    const c10::DeviceGuard guard(anchors.device());
    TORCH_CHECK(grad_lse.device() == anchors.device() &&
                    lse.device() == anchors.device(),
                "info_nce_lse_backward: grad_lse and lse must be on ",
                anchors.device());
    return info_nce_lse_backward_tiled(grad_lse, anchors, candidates, lse,
                                       params, need_anchors, need_candidates,
                                       *kEpilogue);
  }

  static void register_impls(torch::Library& m) {
    m.impl("info_nce_lse", &forward);
    m.impl("info_nce_lse_with_grad", &with_grad);
    m.impl("info_nce_lse_backward", &backward);
  }
};

}  // namespace csl_ext
