// The tile loop shared by the fused losses (info_nce_lse, amdim_nce).
//
// For blocks of anchor rows it computes the (rows x M) score tile
// S = scale * A_R B^T with one GEMM into a reused workspace, hands it to a
// per-op, per-device epilogue, and, when gradients are asked for, treats
// the tile as dL/dS afterwards: dA_R = scale * dS B, dB += scale * dS^T A_R.
// Nothing of size N x M is ever allocated.
//
// The candidates are either rows (M, D) or maps (K, D, L), M = K * L, e.g. a
// contiguous NCHW feature map whose K images have L = H * W locations each:
// candidate k * L + l is maps[k, :, l]. Maps are read in place with batched
// GEMMs (one (R x D) x (D x L) product per image, written into the image's
// columns of the tile), which saves the (M, D) transposed copy of the map and
// of its gradient.
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
  at::Tensor anchors;     // N x D, contiguous: the compute dtype, or the
  at::Tensor candidates;  // M x D rows or K x D x L maps: inputs' dtype
  double scale = 1.0;
  at::Tensor grad_a;  // N x D, the compute dtype, every row overwritten
  bool need_grad_b = false;
  int64_t tile_elements = int64_t{1} << 20;  // workspace budget per thread
  bool parallel_row_blocks = false;          // CPU: spread blocks over threads
  // float16 / bfloat16 inputs kept as they are, their GEMMs run in that
  // precision with float32 outputs (accumulation) and the tile, dA and dB in
  // float32 (CUDA); else the inputs are float32 copies (CPU).
  bool low_precision_gemm = false;

  bool maps() const { return candidates.dim() == 3; }
  int64_t num_candidates() const;  // M
  // Options of the tile, the gradients and every per-row result.
  at::TensorOptions compute_options() const;
};

// The tiles of `anchors` against `candidates`, made contiguous, with the
// device's workspace budget and threading; half / bfloat16 inputs are cast
// to float32 unless low_precision_gemm.
ScoreTiles make_score_tiles(const at::Tensor& anchors,
                            const at::Tensor& candidates, double scale,
                            int64_t tile_elements, bool parallel_row_blocks,
                            bool low_precision_gemm = false);

// Called once per tile with the (R x M) scores of anchors row0 .. row0+R-1;
// must leave dL/dS in the tile when gradients are asked for.
using ScoreTileEpilogue = std::function<void(at::Tensor& tile, int64_t row0)>;

// Runs the loop; returns dB (the candidates' shape) when need_grad_b, else
// undefined.
at::Tensor for_each_score_tile(const ScoreTiles& tiles,
                               const ScoreTileEpilogue& epilogue);

// Half and bfloat16 are computed in float32 (fp32 accumulation); float and
// double in their own precision. `as_compute` also makes t contiguous.
at::ScalarType compute_dtype(const at::Tensor& t);
at::Tensor as_compute(const at::Tensor& t);

}  // namespace csl_ext
