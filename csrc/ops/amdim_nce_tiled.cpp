#include "amdim_nce_tiled.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "score_tiles.h"

namespace csl_ext {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> amdim_nce_tiled(
    const at::Tensor& anchors, const at::Tensor& candidates,
    int64_t block_size, double scale, double tclip, double loss_weight,
    double reg_weight, bool compute_grad, const AmdimNceEpilogue& epilogue) {
  TORCH_CHECK(anchors.dim() == 2,
              "amdim_nce: anchors must be 2-D (N, D), got shape ",
              anchors.sizes());
  TORCH_CHECK(candidates.dim() == 2,
              "amdim_nce: candidates must be 2-D (M, D), got shape ",
              candidates.sizes());
  TORCH_CHECK(anchors.size(1) == candidates.size(1),
              "amdim_nce: anchors and candidates must share D, got ",
              anchors.sizes(), " and ", candidates.sizes());
  TORCH_CHECK(anchors.scalar_type() == candidates.scalar_type() &&
                  at::isFloatingType(anchors.scalar_type()),
              "amdim_nce: anchors and candidates must share a floating dtype, "
              "got ",
              anchors.scalar_type(), " and ", candidates.scalar_type());
  TORCH_CHECK(anchors.device() == candidates.device(),
              "amdim_nce: anchors and candidates must be on the same device");
  TORCH_CHECK(block_size >= 1 &&
                  candidates.size(0) == anchors.size(0) * block_size,
              "amdim_nce: candidates must hold block_size rows per anchor "
              "(M = N * block_size), got M=",
              candidates.size(0), ", N=", anchors.size(0),
              ", block_size=", block_size);
  TORCH_CHECK(tclip > 0, "amdim_nce: tclip must be > 0, got ", tclip);

  ScoreTiles tiles;
  tiles.anchors = as_compute(anchors);
  tiles.candidates = as_compute(candidates);
  tiles.scale = scale;
  tiles.tile_elements = epilogue.tile_elements;
  tiles.parallel_row_blocks = epilogue.parallel_row_blocks;
  const auto opts = tiles.anchors.options();
  const int64_t n = anchors.size(0);
  auto loss_rows = at::zeros({n}, opts);
  auto square_rows = at::zeros({n}, opts);
  if (compute_grad) {
    tiles.grad_a = at::empty_like(tiles.anchors);
    tiles.need_grad_b = true;
  }
  AmdimNceParams params;
  params.block_size = block_size;
  params.tclip = tclip;
  params.loss_weight = loss_weight;
  params.reg_weight = reg_weight;
  auto grad_b = for_each_score_tile(tiles, [&](at::Tensor& tile, int64_t row0) {
    const int64_t r = tile.size(0);
    auto loss = loss_rows.narrow(0, row0, r);
    auto squares = square_rows.narrow(0, row0, r);
    epilogue.rows(tile, loss, squares, params, row0, compute_grad);
  });
  if (!compute_grad) {
    return {loss_rows, square_rows, at::empty({0}, opts),
            at::empty({0}, opts)};
  }
  return {loss_rows, square_rows, tiles.grad_a, grad_b};
}

}  // namespace csl_ext
