// CUDA epilogue of the fused AMDIM NCE op: one thread block per tile row,
// four passes over the row (sum of squares and max; sum of exp; the own
// image's softplus terms; the gradient). The CPU twin is
// cpu/amdim_nce_kernel.cpp; the shared scalar math is amdim_nce_math.h.
#include <cmath>
#include <limits>

#include "amdim_nce_launch.h"
#include "block_reduce.cuh"

namespace csl_ext {
namespace {

template <typename T>
__global__ void amdim_nce_rows_kernel(T* tile, T* loss_rows, T* square_rows,
                                      int64_t m, AmdimNceParams params,
                                      int64_t row0, bool grad) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cap = static_cast<T>(params.tclip);
  const T loss_weight = static_cast<T>(params.loss_weight);
  const T reg_weight = static_cast<T>(params.reg_weight);
  T* row = tile + static_cast<int64_t>(blockIdx.x) * m;
  const int64_t own_begin = (row0 + blockIdx.x) * params.block_size;
  const int64_t own_end = own_begin + params.block_size;
  auto is_own = [&](int64_t j) { return j >= own_begin && j < own_end; };

  T squares = 0, row_max = neg_inf;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const T raw = row[j];
    squares += raw * raw;
    if (!is_own(j)) {
      const T logit = info_nce_softcap(raw, cap);
      row_max = logit > row_max ? logit : row_max;
    }
  }
  squares = block_reduce(squares, T(0), SumOp<T>());
  row_max = block_reduce(row_max, neg_inf, MaxOp<T>());
  const T shift = row_max == neg_inf ? T(0) : row_max;
  T sum = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    if (!is_own(j)) sum += exp(info_nce_softcap(row[j], cap) - shift);
  }
  sum = block_reduce(sum, T(0), SumOp<T>());
  const T lse = row_max == neg_inf ? neg_inf : shift + log(sum);
  T loss = 0, sigmoid_sum = 0;
  if (lse != neg_inf) {  // one image only: no negatives, no loss
    for (int64_t j = own_begin + threadIdx.x; j < own_end; j += blockDim.x) {
      const T logit = info_nce_softcap(row[j], cap);
      loss += amdim_softplus(lse - logit);
      sigmoid_sum += amdim_sigmoid(lse - logit);
    }
  }
  loss = block_reduce(loss, T(0), SumOp<T>());
  sigmoid_sum = block_reduce(sigmoid_sum, T(0), SumOp<T>());
  if (threadIdx.x == 0) {
    loss_rows[blockIdx.x] = loss;
    square_rows[blockIdx.x] = squares;
  }
  if (!grad) return;
  const T negative_weight = loss_weight * sigmoid_sum;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const T raw = row[j];
    const T logit = info_nce_softcap(raw, cap);
    if (is_own(j)) {
      row[j] = amdim_positive_grad(raw, logit, lse, cap, loss_weight,
                                   reg_weight);
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
                                  bool grad, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  amdim_nce_rows_kernel<T><<<static_cast<unsigned>(rows), kBlockReduceThreads,
                             0, stream>>>(tile, loss_rows, square_rows, m,
                                          params, row0, grad);
  return cudaGetLastError();
}

template cudaError_t launch_amdim_nce_rows<float>(float*, float*, float*,
                                                  int64_t, int64_t,
                                                  AmdimNceParams, int64_t,
                                                  bool, cudaStream_t);
template cudaError_t launch_amdim_nce_rows<double>(double*, double*, double*,
                                                   int64_t, int64_t,
                                                   AmdimNceParams, int64_t,
                                                   bool, cudaStream_t);

}  // namespace csl_ext
