// Argument checks of the fused AMDIM NCE op, shared by the CPU and CUDA
// registrations; they run before any device guard.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "amdim_nce_math.h"

namespace csl_ext {

// Checks the arguments and returns the parameters (weight_factors is left
// nullptr: the tiled driver sets it); throws c10::Error with a message
// naming the argument.
AmdimNceParams amdim_nce_check_args(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const c10::optional<at::Tensor>& weight_factors, int64_t block_size,
    int64_t block_offset, double scale, double tclip, double loss_weight,
    double reg_weight, bool compute_grad);

}  // namespace csl_ext
