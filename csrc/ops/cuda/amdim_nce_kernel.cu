// CUDA epilogue of the fused AMDIM NCE op: one thread block per tile row and
// one pass over the row for the loss (sum of squares and an online max and
// sum of exp of the negatives' logits), then the own image's softplus terms,
// then, for the gradient, one pass that writes dL/ds. The CPU twin is
// cpu/amdim_nce_kernel.cpp; the shared scalar math is amdim_nce_math.h.
#include <cmath>
#include <limits>

#include "amdim_nce_launch.h"
#include "block_reduce.cuh"

namespace csl_ext {
namespace {

constexpr int kThreads = kBlockReduceThreads;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    amdim_nce_rows_kernel(T* tile, T* loss_rows, T* square_rows, int64_t m,
                          AmdimNceParams params, int64_t row0) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cap = static_cast<T>(params.tclip);
  T loss_weight, reg_weight;
  amdim_weights(params, &loss_weight, &reg_weight);
  T* row = tile + static_cast<int64_t>(blockIdx.x) * m;
  const int64_t own_begin =
      (row0 + blockIdx.x + params.block_offset) * params.block_size;
  const int64_t own_end = own_begin + params.block_size;
  auto is_own = [&](int64_t j) { return j >= own_begin && j < own_end; };
  // One pass: squares of all scores; the negatives' logits' running max and
  // sum of exp(logit - running max), rescaled when the max grows.
  T squares = 0, thread_max = neg_inf, thread_sum = 0;
  for (int64_t j = threadIdx.x; j < m; j += kThreads) {
    const T raw = row[j];
    squares += raw * raw;
    if (is_own(j)) continue;
    const T logit = info_nce_softcap(raw, cap);
    if (logit > thread_max) {
      thread_sum = thread_sum * exp(thread_max - logit) + T(1);
      thread_max = logit;
    } else {
      thread_sum += exp(logit - thread_max);
    }
  }
  squares = block_reduce<kThreads>(squares, T(0), SumOp<T>());
  const T row_max = block_reduce<kThreads>(thread_max, neg_inf, MaxOp<T>());
  const T rescale = thread_max == neg_inf ? T(0) : exp(thread_max - row_max);
  const T sum = block_reduce<kThreads>(thread_sum * rescale, T(0), SumOp<T>());
  const T lse = row_max == neg_inf ? neg_inf : row_max + log(sum);
  T loss = 0, sigmoid_sum = 0;
  if (lse != neg_inf) {  // one image only: no negatives, no loss
    for (int64_t j = own_begin + threadIdx.x; j < own_end; j += kThreads) {
      const T logit = info_nce_softcap(row[j], cap);
      loss += amdim_softplus(lse - logit);
      sigmoid_sum += amdim_sigmoid(lse - logit);
    }
  }
  loss = block_reduce<kThreads>(loss, T(0), SumOp<T>());
  sigmoid_sum = block_reduce<kThreads>(sigmoid_sum, T(0), SumOp<T>());
  if (threadIdx.x == 0) {
    loss_rows[blockIdx.x] = loss;
    square_rows[blockIdx.x] = squares;
  }
  if (!params.compute_grad) return;
  const T negative_weight = loss_weight * sigmoid_sum;
  for (int64_t j = threadIdx.x; j < m; j += kThreads) {
    const T raw = row[j];
    const T logit = info_nce_softcap(raw, cap);
    if (is_own(j)) {
      row[j] =
          amdim_positive_grad(raw, logit, lse, cap, loss_weight, reg_weight);
    } else {
      const T softmax = lse == neg_inf ? T(0) : exp(logit - lse);
      row[j] = negative_weight * softmax * info_nce_softcap_grad(logit, cap) +
               T(2) * reg_weight * raw;
    }
  }
}

}  // namespace

template <typename T>
cudaError_t launch_amdim_nce_rows(T* tile, T* loss_rows, T* square_rows,
                                  int64_t rows, int64_t m,
                                  AmdimNceParams params, int64_t row0,
                                  cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  amdim_nce_rows_kernel<T>
      <<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
          tile, loss_rows, square_rows, m, params, row0);
  return cudaGetLastError();
}

template cudaError_t launch_amdim_nce_rows<float>(float*, float*, float*,
                                                  int64_t, int64_t,
                                                  AmdimNceParams, int64_t,
                                                  cudaStream_t);
template cudaError_t launch_amdim_nce_rows<double>(double*, double*, double*,
                                                   int64_t, int64_t,
                                                   AmdimNceParams, int64_t,
                                                   cudaStream_t);

}  // namespace csl_ext
