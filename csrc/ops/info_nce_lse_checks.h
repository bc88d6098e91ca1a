// Argument checks of the fused InfoNCE op, shared by the CPU and CUDA
// registrations; they run before any device guard.
#pragma once

#include <ATen/core/Tensor.h>

#include "info_nce_lse_math.h"

namespace csl_ext {

// Checks the arguments and returns the parameters; throws c10::Error with a
// message naming the argument.
InfoNceParams info_nce_check_args(const at::Tensor& anchors,
                                  const at::Tensor& candidates, double scale,
                                  double softcap, int64_t mask,
                                  int64_t block_size, int64_t row_offset);

}  // namespace csl_ext
