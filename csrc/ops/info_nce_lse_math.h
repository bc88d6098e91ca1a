// Scalar math of the fused InfoNCE op, shared by the CPU and CUDA epilogues.
//
// A score is s_ij = scale * <a_i, b_j> (the GEMM applies the scale); the
// logit is c * tanh(s_ij / c) when the soft cap c > 0, else s_ij; masked
// logits are -inf so they drop out of the log-sum-exp.
#pragma once

#include <cmath>  // tanh
#include <cstdint>

#include "host_device.h"

namespace csl_ext {

// Mask modes, in the order of the Python enum ("none", "diag", "block").
enum class InfoNceMask : int64_t { kNone = 0, kDiag = 1, kBlock = 2 };

struct InfoNceParams {
  double scale = 1.0;
  double softcap = 0.0;  // <= 0: no cap
  InfoNceMask mask = InfoNceMask::kNone;
  int64_t block_size = 1;
  // Anchor i is identified with candidate (i + row_offset) for "diag" and
  // with block (i + row_offset) for "block", e.g. this process's slice of a
  // batch gathered over processes.
  int64_t row_offset = 0;
};

// True when candidate j is excluded for the anchor with global index gi.
CSL_HOST_DEVICE bool info_nce_is_masked(InfoNceMask mask, int64_t block_size,
                                        int64_t gi, int64_t j) {
  switch (mask) {
    case InfoNceMask::kDiag:
      return j == gi;
    case InfoNceMask::kBlock:
      return j / block_size == gi;
    default:
      return false;
  }
}

// c * tanh(s / c), the soft cap of AMDIM's "tclip".
template <typename T>
CSL_HOST_DEVICE T info_nce_softcap(T s, T cap) {
  return cap > T(0) ? cap * tanh(s / cap) : s;
}

// d(logit)/d(score) expressed with the capped logit l = c * tanh(s / c):
// 1 - tanh^2 = 1 - (l / c)^2. Reusing l avoids a second tanh.
template <typename T>
CSL_HOST_DEVICE T info_nce_softcap_grad(T logit, T cap) {
  if (cap <= T(0)) return T(1);
  const T t = logit / cap;
  return T(1) - t * t;
}

}  // namespace csl_ext
