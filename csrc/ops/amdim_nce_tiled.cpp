#include "amdim_nce_tiled.h"

#include <ATen/ATen.h>

#include "score_tiles.h"

namespace csl_ext {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> amdim_nce_tiled(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const c10::optional<at::Tensor>& weight_factors, AmdimNceParams params,
    const AmdimNceEpilogue& epilogue) {
  auto tiles = make_score_tiles(
      anchors, candidates, params.scale, epilogue.tile_elements,
      epilogue.parallel_row_blocks, epilogue.low_precision_gemm);
  const auto opts = tiles.compute_options();
  at::Tensor factors;  // kept alive while the epilogue reads it
  if (weight_factors.has_value()) {
    factors = weight_factors->to(opts.dtype()).contiguous();
    params.weight_factors = factors.data_ptr();
  }
  const int64_t n = anchors.size(0);
  auto loss_rows = at::zeros({n}, opts);
  auto square_rows = at::zeros({n}, opts);
  if (params.compute_grad) {
    tiles.grad_a = at::empty(tiles.anchors.sizes(), opts);
    tiles.need_grad_b = true;
  }
  auto grad_b = for_each_score_tile(tiles, [&](at::Tensor& tile, int64_t row0) {
    const int64_t r = tile.size(0);
    auto loss = loss_rows.narrow(0, row0, r);
    auto squares = square_rows.narrow(0, row0, r);
    epilogue.rows(tile, loss, squares, params, row0);
  });
  if (!params.compute_grad) {
    return {loss_rows, square_rows, at::empty({0}, opts), at::empty({0}, opts)};
  }
  return {loss_rows, square_rows, tiles.grad_a, grad_b};
}

}  // namespace csl_ext
