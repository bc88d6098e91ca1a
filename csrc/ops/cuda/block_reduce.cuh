// Block-wide reductions of the CUDA epilogues (one thread block per row).
// Launch with kBlockReduceThreads threads; every thread must call.
#pragma once

namespace csl_ext {

constexpr int kBlockReduceThreads = 256;  // a power of two, a multiple of the warp

template <typename T>
struct MaxOp {
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};
template <typename T>
struct SumOp {
  __device__ T operator()(T a, T b) const { return a + b; }
};

// Reduces `value` over the block; every thread gets the result.
template <typename T, typename Op>
__device__ T block_reduce(T value, T identity, Op op) {
  __shared__ T warp_results[kBlockReduceThreads / 32];
  for (int offset = 16; offset > 0; offset >>= 1) {
    value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
  }
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) warp_results[warp] = value;
  __syncthreads();
  value = threadIdx.x < (blockDim.x >> 5) ? warp_results[lane] : identity;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset >>= 1) {
      value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
    }
    if (lane == 0) warp_results[0] = value;
  }
  __syncthreads();
  value = warp_results[0];
  __syncthreads();  // warp_results is reused by the next reduction
  return value;
}

}  // namespace csl_ext
