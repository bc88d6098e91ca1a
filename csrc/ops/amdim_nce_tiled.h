// Device-generic part of the fused AMDIM NCE op: the pass over the score
// tiles (score_tiles.h). Only the row epilogue is per device.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <tuple>

#include "amdim_nce_math.h"

namespace csl_ext {

struct AmdimNceEpilogue {
  // tile: (R, M) raw scores of anchors row0 .. row0+R-1. Writes loss_rows
  // and square_rows (R); when params.compute_grad, leaves dL/ds in the tile.
  void (*rows)(at::Tensor& tile, at::Tensor& loss_rows, at::Tensor& square_rows,
               const AmdimNceParams& params, int64_t row0);
  int64_t tile_elements;
  bool parallel_row_blocks;
  bool low_precision_gemm;  // see ScoreTiles
};

// (loss_rows, square_rows, dA, dB) of checked arguments (amdim_nce_checks.h);
// dB has the candidates' shape; dA and dB are (0,) without compute_grad.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> amdim_nce_tiled(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const c10::optional<at::Tensor>& weight_factors, AmdimNceParams params,
    const AmdimNceEpilogue& epilogue);

}  // namespace csl_ext
