// CUDA epilogue of the fused InfoNCE op: one thread block per tile row, a
// single pass that caps, masks and reduces (max, then sum of exp), and a
// single pass for the softmax gradient. The CPU twin is
// cpu/info_nce_lse_kernel.cpp; the shared scalar math is info_nce_lse_math.h.
#include <cmath>
#include <limits>

#include "block_reduce.cuh"
#include "info_nce_lse_launch.h"

namespace csl_ext {
namespace {

template <typename T>
__global__ void info_nce_logits_and_lse_kernel(T* tile, T* lse, int64_t m,
                                               InfoNceParams params,
                                               int64_t row0) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cap = static_cast<T>(params.softcap);
  T* row = tile + static_cast<int64_t>(blockIdx.x) * m;
  const int64_t anchor = row0 + blockIdx.x + params.row_offset;
  T row_max = neg_inf;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    T logit = info_nce_softcap(row[j], cap);
    if (info_nce_is_masked(params.mask, params.block_size, anchor, j)) {
      logit = neg_inf;
    }
    row[j] = logit;
    row_max = logit > row_max ? logit : row_max;
  }
  if (lse == nullptr) return;  // uniform over the block
  row_max = block_reduce(row_max, neg_inf, MaxOp<T>());
  const T shift = row_max == neg_inf ? T(0) : row_max;
  T sum = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    sum += exp(row[j] - shift);
  }
  sum = block_reduce(sum, T(0), SumOp<T>());
  if (threadIdx.x == 0) {
    lse[blockIdx.x] = row_max == neg_inf ? neg_inf : shift + log(sum);
  }
}

template <typename T>
__global__ void info_nce_score_grad_kernel(T* tile, const T* lse,
                                           const T* row_scale, int64_t m,
                                           InfoNceParams params,
                                           int64_t row0) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cap = static_cast<T>(params.softcap);
  T* row = tile + static_cast<int64_t>(blockIdx.x) * m;
  const int64_t anchor = row0 + blockIdx.x + params.row_offset;
  const T row_lse = lse[blockIdx.x];
  const T shift = row_lse == neg_inf ? T(0) : row_lse;
  const T weight = row_scale[blockIdx.x];
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const T logit = row[j];
    const bool masked =
        info_nce_is_masked(params.mask, params.block_size, anchor, j);
    row[j] = masked ? T(0)
                    : weight * exp(logit - shift) *
                          info_nce_softcap_grad(logit, cap);
  }
}

}  // namespace

template <typename T>
cudaError_t launch_info_nce_logits_and_lse(T* tile, T* lse, int64_t rows,
                                           int64_t m, InfoNceParams params,
                                           int64_t row0, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  info_nce_logits_and_lse_kernel<T>
      <<<static_cast<unsigned>(rows), kBlockReduceThreads, 0, stream>>>(tile, lse, m,
                                                              params, row0);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_info_nce_score_grad(T* tile, const T* lse,
                                       const T* row_scale, int64_t rows,
                                       int64_t m, InfoNceParams params,
                                       int64_t row0, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  info_nce_score_grad_kernel<T><<<static_cast<unsigned>(rows), kBlockReduceThreads, 0,
                                  stream>>>(tile, lse, row_scale, m, params,
                                            row0);
  return cudaGetLastError();
}

template cudaError_t launch_info_nce_logits_and_lse<float>(
    float*, float*, int64_t, int64_t, InfoNceParams, int64_t, cudaStream_t);
template cudaError_t launch_info_nce_logits_and_lse<double>(
    double*, double*, int64_t, int64_t, InfoNceParams, int64_t, cudaStream_t);
template cudaError_t launch_info_nce_score_grad<float>(
    float*, const float*, const float*, int64_t, int64_t, InfoNceParams,
    int64_t, cudaStream_t);
template cudaError_t launch_info_nce_score_grad<double>(
    double*, const double*, const double*, int64_t, int64_t, InfoNceParams,
    int64_t, cudaStream_t);

}  // namespace csl_ext
