// The tile loop shared by the fused losses (info_nce_lse, amdim_nce).
//
// For blocks of anchor rows it computes the (rows x M) score tile
// S = scale * A_R B^T with one GEMM into a reused workspace, hands it to a
// per-op, per-device epilogue, and, when gradients are asked for, treats
// the tile as dL/dS afterwards: dA_R = scale * dS B, dB += scale * dS^T A_R.
// Nothing of size N x M is ever allocated.
//
// On CPU the row blocks are spread over threads (at::parallel_for), each with
// its own workspace, single-threaded GEMMs and its own dB partial sum; the
// partials are added in thread order at the end. One parallel region per op
// call instead of several per tile: no barrier per tile, which matters when
// other processes share the cores, and deterministic results. On CUDA the
// blocks run in order on the current stream.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

namespace csl_ext {

struct ScoreTiles {
  at::Tensor anchors;     // N x D, contiguous, the compute dtype
  at::Tensor candidates;  // M x D, same
  double scale = 1.0;
  at::Tensor grad_a;      // N x D, every row overwritten when defined
  bool need_grad_b = false;
  int64_t tile_elements = int64_t{1} << 20;  // workspace budget per thread
  bool parallel_row_blocks = false;          // CPU: spread blocks over threads
};

// Called once per tile with the (R x M) scores of anchors row0 .. row0+R-1;
// must leave dL/dS in the tile when gradients are asked for.
using ScoreTileEpilogue = std::function<void(at::Tensor& tile, int64_t row0)>;

// Runs the loop; returns dB (M x D) when need_grad_b, else undefined.
at::Tensor for_each_score_tile(const ScoreTiles& tiles,
                               const ScoreTileEpilogue& epilogue);

// Half and bfloat16 are computed in float32 (fp32 accumulation); float and
// double in their own precision. `as_compute` also makes t contiguous.
at::ScalarType compute_dtype(const at::Tensor& t);
at::Tensor as_compute(const at::Tensor& t);

}  // namespace csl_ext
