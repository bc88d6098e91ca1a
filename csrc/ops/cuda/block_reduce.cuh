// Block-wide reductions of the CUDA epilogues (one thread block per row).
// The block size is a template parameter, checked at compile time, so a
// kernel cannot be launched with a block the reduction does not handle:
// launch with kThreads threads; every thread must call.
#pragma once

namespace csl_ext {

constexpr int kBlockReduceThreads = 256;  // the epilogues' block size

template <typename T>
struct MaxOp {
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

template <typename T>
struct SumOp {
  __device__ T operator()(T a, T b) const { return a + b; }
};

// Reduces `value` over a block of kThreads threads; every thread gets the
// result.
template <int kThreads, typename T, typename Op>
__device__ T block_reduce(T value, T identity, Op op) {
  static_assert(kThreads >= 32 && kThreads <= 1024 && kThreads % 32 == 0,
                "block_reduce: the block must be 32 .. 1024 whole warps");
  constexpr int kWarps = kThreads / 32;  // <= 32: one warp reduces them all
  __shared__ T warp_results[kWarps];
  for (int offset = 16; offset > 0; offset >>= 1) {
    value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
  }
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) warp_results[warp] = value;
  __syncthreads();
  value = lane < kWarps ? warp_results[lane] : identity;
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
