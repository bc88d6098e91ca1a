// Host entry of the fused AMDIM NCE op, shared by the CPU and CUDA
// registrations: checks (before the device guard, so that a device mismatch
// gets its own message), device guard, the tiled driver with the device's
// epilogue:
//   TORCH_LIBRARY_IMPL(csl_ext, CPU, m) {
//     AmdimNceRegistration<&kCpuEpilogue>::register_impls(m);
//   }
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <tuple>

#include "amdim_nce_checks.h"
#include "amdim_nce_tiled.h"

namespace csl_ext {

template <const AmdimNceEpilogue* kEpilogue>
struct AmdimNceRegistration {
  static std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward(
      const at::Tensor& anchors, const at::Tensor& candidates,
      const c10::optional<at::Tensor>& weight_factors, int64_t block_size,
      int64_t block_offset, double scale, double tclip, double loss_weight,
      double reg_weight, bool compute_grad) {
    const auto params = amdim_nce_check_args(
        anchors, candidates, weight_factors, block_size, block_offset, scale,
        tclip, loss_weight, reg_weight, compute_grad);
    const c10::DeviceGuard guard(anchors.device());
    return amdim_nce_tiled(anchors, candidates, weight_factors, params,
                           *kEpilogue);
  }

  static void register_impls(torch::Library& m) {
    m.impl("amdim_nce", &forward);
  }
};

}  // namespace csl_ext
