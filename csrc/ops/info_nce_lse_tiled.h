// Device-generic part of the fused InfoNCE op: its three passes (forward,
// forward with gradients, backward) over the score tiles of score_tiles.h.
// Only the epilogue below differs between CPU and CUDA.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "info_nce_lse_math.h"

namespace csl_ext {

// The per-device part of the op. `tile` is a contiguous (R, M) float or
// double tensor of scores s = scale * A_R B^T for anchors row0 .. row0+R-1.
struct InfoNceEpilogue {
  // Turns the scores into logits in place (soft cap, masked -> -inf) and,
  // when `lse` is defined, writes each row's log-sum-exp into it (R).
  void (*logits_and_lse)(at::Tensor& tile, at::Tensor& lse,
                         const InfoNceParams& params, int64_t row0);
  // Turns the logits into dL/dscore in place:
  // row_scale_r * exp(l - lse_r) * dl/ds, and 0 where masked.
  void (*score_grad)(at::Tensor& tile, const at::Tensor& lse,
                     const at::Tensor& row_scale, const InfoNceParams& params,
                     int64_t row0);
  // Optional (nullptr: the two above in turn): both at once for the forward
  // that also computes gradients, e.g. with one exp per entry instead of two.
  void (*logits_lse_and_score_grad)(at::Tensor& tile, at::Tensor& lse,
                                    const at::Tensor& row_scale,
                                    const InfoNceParams& params, int64_t row0);
  // Workspace budget in elements; the row block is budget / M rows.
  int64_t tile_elements;
  // Spread row blocks over CPU threads (see above); false on CUDA.
  bool parallel_row_blocks;
  // GEMMs of float16 / bfloat16 inputs in that precision (see ScoreTiles).
  bool low_precision_gemm;
};

// lse: (N,) in float32 for half/bfloat16 inputs, else the input dtype.
at::Tensor info_nce_lse_forward_tiled(const at::Tensor& anchors,
                                      const at::Tensor& candidates,
                                      const InfoNceParams& params,
                                      const InfoNceEpilogue& epilogue);

// (lse, dA, dB) for the loss sum_i row_weight_i * lse_i, computed in the
// forward pass so that a backward whose incoming gradient is proportional to
// row_weight only rescales them. All three in the compute dtype.
std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_lse_with_grad_tiled(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const at::Tensor& row_weight, const InfoNceParams& params,
    const InfoNceEpilogue& epilogue);

// (dA, dB) from dL/dlse, recomputing each tile. An input whose gradient is
// not needed gets an empty (0,) tensor and costs no GEMM.
std::tuple<at::Tensor, at::Tensor> info_nce_lse_backward_tiled(
    const at::Tensor& grad_lse, const at::Tensor& anchors,
    const at::Tensor& candidates, const at::Tensor& lse,
    const InfoNceParams& params, bool need_anchors, bool need_candidates,
    const InfoNceEpilogue& epilogue);

}  // namespace csl_ext
