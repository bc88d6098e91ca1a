// Launcher of the CUDA epilogue of the fused AMDIM NCE op. Plain pointers
// and a stream: the .cu file includes no torch header.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../amdim_nce_math.h"

namespace csl_ext {

// tile: (rows, m) raw scores; writes loss_rows and square_rows (rows) and,
// when params.compute_grad, dL/ds into the tile.
template <typename T>
cudaError_t launch_amdim_nce_rows(T* tile, T* loss_rows, T* square_rows,
                                  int64_t rows, int64_t m,
                                  AmdimNceParams params, int64_t row0,
                                  cudaStream_t stream);

}  // namespace csl_ext
