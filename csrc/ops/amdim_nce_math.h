// Scalar math of the fused AMDIM NCE op, shared by the CPU and CUDA
// epilogues.
#pragma once

#include <cstdint>
#include <limits>

#include "info_nce_lse_math.h"

namespace csl_ext {

struct AmdimNceParams {
  int64_t block_size = 1;  // locations per image, e.g. 49 for a 7x7 map
  double tclip = 10.0;     // soft cap of the logits
  double loss_weight = 1.0;
  double reg_weight = 0.0;
};

// log(1 + e^z) without overflow.
template <typename T>
CSL_HOST_DEVICE T amdim_softplus(T z) {
  return z > T(0) ? z + log1p(exp(-z)) : log1p(exp(z));
}

template <typename T>
CSL_HOST_DEVICE T amdim_sigmoid(T z) {
  return T(1) / (T(1) + exp(-z));
}

// dL/ds of a positive logit l = cap(s): loss term softplus(lse - l), whose
// derivative is -sigmoid(lse - l) * dl/ds; plus the regulariser's 2 w s.
template <typename T>
CSL_HOST_DEVICE T amdim_positive_grad(T raw, T logit, T lse, T tclip,
                                      T loss_weight, T reg_weight) {
  const T sig = lse == -std::numeric_limits<T>::infinity()
                    ? T(0)
                    : amdim_sigmoid(lse - logit);
  return -loss_weight * sig * info_nce_softcap_grad(logit, tclip) +
         T(2) * reg_weight * raw;
}

}  // namespace csl_ext
