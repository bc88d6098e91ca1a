// Parameters and scalar math of the fused AMDIM NCE op, shared by the CPU and
// CUDA epilogues.
#pragma once

#include <cmath>  // exp, log1p
#include <cstdint>
#include <limits>

#include "host_device.h"
#include "info_nce_lse_math.h"

namespace csl_ext {

// Everything of one amdim_nce call but its tensors.
struct AmdimNceParams {
  int64_t block_size = 1;  // locations per image, e.g. 49 for a 7x7 map
  // Anchor i's own image is candidate block (i + block_offset), e.g. rank * N
  // when the candidates are gathered over processes.
  int64_t block_offset = 0;
  double scale = 1.0;        // raw score s = scale * <a, c>
  double tclip = 10.0;       // soft cap of the logits
  double loss_weight = 1.0;  // gradients of loss_weight * sum(loss rows)
  double reg_weight = 0.0;   //   + reg_weight * sum(square rows)
  bool compute_grad = false;
  // Optional (2,) factors of loss_weight and reg_weight in device memory, in
  // the compute dtype (e.g. the incoming gradients of a backward pass, read
  // without a host-device synchronisation); nullptr: 1 and 1.
  const void* weight_factors = nullptr;
};

// loss_weight and reg_weight times their factors, read where the epilogue
// runs.
template <typename T>
CSL_HOST_DEVICE void amdim_weights(const AmdimNceParams& params, T* loss_weight,
                                   T* reg_weight) {
  const T* factors = static_cast<const T*>(params.weight_factors);
  *loss_weight = static_cast<T>(params.loss_weight) *
                 (factors != nullptr ? factors[0] : T(1));
  *reg_weight = static_cast<T>(params.reg_weight) *
                (factors != nullptr ? factors[1] : T(1));
}

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
