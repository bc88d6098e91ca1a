// Launchers of the CUDA epilogue kernels. Plain pointers and a stream only:
// the .cu file includes no torch header, which keeps its compile short.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../info_nce_lse_math.h"

namespace csl_ext {

// tile: (rows, m) scores -> logits in place; lse (rows) may be nullptr.
template <typename T>
cudaError_t launch_info_nce_logits_and_lse(T* tile, T* lse, int64_t rows,
                                           int64_t m, InfoNceParams params,
                                           int64_t row0, cudaStream_t stream);

// tile: (rows, m) logits -> row_scale * softmax * dlogit/dscore in place.
template <typename T>
cudaError_t launch_info_nce_score_grad(T* tile, const T* lse,
                                       const T* row_scale, int64_t rows,
                                       int64_t m, InfoNceParams params,
                                       int64_t row0, cudaStream_t stream);

// The two above in one kernel, for the forward that also computes the
// gradient: lse (rows) written, the tile left as dL/ds.
template <typename T>
cudaError_t launch_info_nce_lse_and_score_grad(T* tile, T* lse,
                                               const T* row_scale, int64_t rows,
                                               int64_t m, InfoNceParams params,
                                               int64_t row0,
                                               cudaStream_t stream);

}  // namespace csl_ext
