#include "info_nce_lse_tiled.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <limits>

#include "score_tiles.h"

namespace csl_ext {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

ScoreTiles make_tiles(const at::Tensor& anchors, const at::Tensor& candidates,
                      const InfoNceParams& params,
                      const InfoNceEpilogue& epilogue) {
  return make_score_tiles(anchors, candidates, params.scale,
                          epilogue.tile_elements, epilogue.parallel_row_blocks,
                          epilogue.low_precision_gemm);
}

}  // namespace

at::Tensor info_nce_lse_forward_tiled(const at::Tensor& anchors,
                                      const at::Tensor& candidates,
                                      const InfoNceParams& params,
                                      const InfoNceEpilogue& epilogue) {
  const auto tiles = make_tiles(anchors, candidates, params, epilogue);
  // -inf stays for every row when there is no candidate at all.
  auto lse = at::full({anchors.size(0)}, kNegInf, tiles.compute_options());
  for_each_score_tile(tiles, [&](at::Tensor& tile, int64_t row0) {
    auto lse_rows = lse.narrow(0, row0, tile.size(0));
    epilogue.logits_and_lse(tile, lse_rows, params, row0);
  });
  return lse;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_lse_with_grad_tiled(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const at::Tensor& row_weight, const InfoNceParams& params,
    const InfoNceEpilogue& epilogue) {
  TORCH_CHECK(row_weight.dim() == 1 && row_weight.size(0) == anchors.size(0),
              "info_nce_lse: row_weight must have shape (N,) = (",
              anchors.size(0), ",), got ", row_weight.sizes());
  auto tiles = make_tiles(anchors, candidates, params, epilogue);
  const auto opts = tiles.compute_options();
  auto lse = at::full({anchors.size(0)}, kNegInf, opts);
  const auto weight = row_weight.to(opts.dtype()).contiguous();
  tiles.grad_a = at::empty(tiles.anchors.sizes(), opts);
  tiles.need_grad_b = true;
  auto grad_b = for_each_score_tile(tiles, [&](at::Tensor& tile, int64_t row0) {
    const int64_t r = tile.size(0);
    auto lse_rows = lse.narrow(0, row0, r);
    const auto weight_rows = weight.narrow(0, row0, r);
    if (epilogue.logits_lse_and_score_grad != nullptr) {
      epilogue.logits_lse_and_score_grad(tile, lse_rows, weight_rows, params,
                                         row0);
    } else {
      epilogue.logits_and_lse(tile, lse_rows, params, row0);
      epilogue.score_grad(tile, lse_rows, weight_rows, params, row0);
    }
  });
  // Kept in the compute dtype: the backward rescales them before casting.
  return {lse, tiles.grad_a, grad_b};
}

std::tuple<at::Tensor, at::Tensor> info_nce_lse_backward_tiled(
    const at::Tensor& grad_lse, const at::Tensor& anchors,
    const at::Tensor& candidates, const at::Tensor& lse,
    const InfoNceParams& params, bool need_anchors, bool need_candidates,
    const InfoNceEpilogue& epilogue) {
  const int64_t n = anchors.size(0);
  TORCH_CHECK(grad_lse.dim() == 1 && grad_lse.size(0) == n,
              "info_nce_lse_backward: grad_lse must have shape (N,), got ",
              grad_lse.sizes());
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == n,
              "info_nce_lse_backward: lse must have shape (N,), got ",
              lse.sizes());
  auto tiles = make_tiles(anchors, candidates, params, epilogue);
  const auto opts = tiles.compute_options();
  const auto dtype = opts.dtype().toScalarType();
  const auto saved_lse = lse.to(dtype).contiguous();
  const auto upstream = grad_lse.to(dtype).contiguous();
  if (need_anchors) tiles.grad_a = at::empty(tiles.anchors.sizes(), opts);
  tiles.need_grad_b = need_candidates;
  at::Tensor grad_b;
  if (need_anchors || need_candidates) {
    grad_b = for_each_score_tile(tiles, [&](at::Tensor& tile, int64_t row0) {
      const int64_t r = tile.size(0);
      at::Tensor no_lse;  // the saved lse is reused: logits only
      epilogue.logits_and_lse(tile, no_lse, params, row0);
      epilogue.score_grad(tile, saved_lse.narrow(0, row0, r),
                          upstream.narrow(0, row0, r), params, row0);
    });
  }
  // A gradient that was not asked for is an empty (0,) tensor.
  return {need_anchors ? tiles.grad_a.to(anchors.scalar_type())
                       : at::empty({0}, anchors.options()),
          need_candidates ? grad_b.to(candidates.scalar_type())
                          : at::empty({0}, candidates.options())};
}

}  // namespace csl_ext
