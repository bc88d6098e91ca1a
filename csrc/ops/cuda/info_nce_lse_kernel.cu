// CUDA epilogue of the fused InfoNCE op: one thread block per tile row.
// The forward is one pass over the row that caps, masks, stores the logit
// and keeps an online max and sum of exp; the gradient is one pass that
// writes the scaled softmax times dl/ds; the forward that also computes the
// gradient runs both in one kernel. The CPU twin is
// cpu/info_nce_lse_kernel.cpp; the shared scalar math is info_nce_lse_math.h.
#include <cmath>
#include <limits>

#include "block_reduce.cuh"
#include "info_nce_lse_launch.h"

namespace csl_ext {
namespace {

constexpr int kThreads = kBlockReduceThreads;

// Caps and masks the row in place and returns its log-sum-exp (every thread
// of the block gets it): one read and one write of each score.
template <typename T>
__device__ T logits_and_lse_pass(T* row, int64_t m, const InfoNceParams& params,
                                 int64_t anchor) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cap = static_cast<T>(params.softcap);
  T thread_max = neg_inf, thread_sum = 0;
  for (int64_t j = threadIdx.x; j < m; j += kThreads) {
    if (info_nce_is_masked(params.mask, params.block_size, anchor, j)) {
      row[j] = neg_inf;
      continue;
    }
    const T logit = info_nce_softcap(row[j], cap);
    row[j] = logit;
    if (logit > thread_max) {  // online: rescale the sum to the new max
      thread_sum = thread_sum * exp(thread_max - logit) + T(1);
      thread_max = logit;
    } else {
      thread_sum += exp(logit - thread_max);
    }
  }
  const T row_max = block_reduce<kThreads>(thread_max, neg_inf, MaxOp<T>());
  const T rescale = thread_max == neg_inf ? T(0) : exp(thread_max - row_max);
  const T sum = block_reduce<kThreads>(thread_sum * rescale, T(0), SumOp<T>());
  return row_max == neg_inf ? neg_inf : row_max + log(sum);
}

// logits -> weight * exp(l - lse) * dl/ds in place, 0 where masked.
template <typename T>
__device__ void score_grad_pass(T* row, int64_t m, const InfoNceParams& params,
                                int64_t anchor, T row_lse, T weight) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cap = static_cast<T>(params.softcap);
  for (int64_t j = threadIdx.x; j < m; j += kThreads) {
    const T logit = row[j];
    const bool masked =
        row_lse == neg_inf ||
        info_nce_is_masked(params.mask, params.block_size, anchor, j);
    row[j] = masked ? T(0)
                    : weight * exp(logit - row_lse) *
                          info_nce_softcap_grad(logit, cap);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    info_nce_logits_and_lse_kernel(T* tile, T* lse, int64_t m,
                                   InfoNceParams params, int64_t row0) {
  T* row = tile + static_cast<int64_t>(blockIdx.x) * m;
  const int64_t anchor = row0 + blockIdx.x + params.row_offset;
  if (lse == nullptr) {  // logits only (the backward reuses the saved lse)
    const T cap = static_cast<T>(params.softcap);
    for (int64_t j = threadIdx.x; j < m; j += kThreads) {
      row[j] = info_nce_is_masked(params.mask, params.block_size, anchor, j)
                   ? -std::numeric_limits<T>::infinity()
                   : info_nce_softcap(row[j], cap);
    }
    return;
  }
  const T row_lse = logits_and_lse_pass(row, m, params, anchor);
  if (threadIdx.x == 0) lse[blockIdx.x] = row_lse;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    info_nce_score_grad_kernel(T* tile, const T* lse, const T* row_scale,
                               int64_t m, InfoNceParams params, int64_t row0) {
  T* row = tile + static_cast<int64_t>(blockIdx.x) * m;
  const int64_t anchor = row0 + blockIdx.x + params.row_offset;
  score_grad_pass(row, m, params, anchor, lse[blockIdx.x],
                  row_scale[blockIdx.x]);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    info_nce_lse_and_score_grad_kernel(T* tile, T* lse, const T* row_scale,
                                       int64_t m, InfoNceParams params,
                                       int64_t row0) {
  T* row = tile + static_cast<int64_t>(blockIdx.x) * m;
  const int64_t anchor = row0 + blockIdx.x + params.row_offset;
  const T row_lse = logits_and_lse_pass(row, m, params, anchor);
  if (threadIdx.x == 0) lse[blockIdx.x] = row_lse;
  // Each thread rewrites only the entries it wrote above: no barrier needed.
  score_grad_pass(row, m, params, anchor, row_lse, row_scale[blockIdx.x]);
}

}  // namespace

template <typename T>
cudaError_t launch_info_nce_logits_and_lse(T* tile, T* lse, int64_t rows,
                                           int64_t m, InfoNceParams params,
                                           int64_t row0, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  info_nce_logits_and_lse_kernel<T>
      <<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(tile, lse, m,
                                                             params, row0);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_info_nce_score_grad(T* tile, const T* lse,
                                       const T* row_scale, int64_t rows,
                                       int64_t m, InfoNceParams params,
                                       int64_t row0, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  info_nce_score_grad_kernel<T>
      <<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
          tile, lse, row_scale, m, params, row0);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_info_nce_lse_and_score_grad(T* tile, T* lse,
                                               const T* row_scale, int64_t rows,
                                               int64_t m, InfoNceParams params,
                                               int64_t row0,
                                               cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  info_nce_lse_and_score_grad_kernel<T>
      <<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
          tile, lse, row_scale, m, params, row0);
  return cudaGetLastError();
}

#define CSL_INSTANTIATE(T)                                              \
  template cudaError_t launch_info_nce_logits_and_lse<T>(               \
      T*, T*, int64_t, int64_t, InfoNceParams, int64_t, cudaStream_t);  \
  template cudaError_t launch_info_nce_score_grad<T>(                   \
      T*, const T*, const T*, int64_t, int64_t, InfoNceParams, int64_t, \
      cudaStream_t);                                                    \
  template cudaError_t launch_info_nce_lse_and_score_grad<T>(           \
      T*, T*, const T*, int64_t, int64_t, InfoNceParams, int64_t,       \
      cudaStream_t);
CSL_INSTANTIATE(float)
CSL_INSTANTIATE(double)
#undef CSL_INSTANTIATE

}  // namespace csl_ext
