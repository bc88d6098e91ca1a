// Device-generic part of the fused AMDIM NCE op: checks and the pass over
// the score tiles (score_tiles.h). Only the row epilogue is per device.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "amdim_nce_math.h"

namespace csl_ext {

struct AmdimNceEpilogue {
  // tile: (R, M) raw scores of anchors row0 .. row0+R-1. Writes loss_rows
  // and square_rows (R); when grad, leaves dL/ds in the tile.
  void (*rows)(at::Tensor& tile, at::Tensor& loss_rows,
               at::Tensor& square_rows, const AmdimNceParams& params,
               int64_t row0, bool grad);
  int64_t tile_elements;
  bool parallel_row_blocks;
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> amdim_nce_tiled(
    const at::Tensor& anchors, const at::Tensor& candidates,
    int64_t block_size, double scale, double tclip, double loss_weight,
    double reg_weight, bool compute_grad, const AmdimNceEpilogue& epilogue);

}  // namespace csl_ext
