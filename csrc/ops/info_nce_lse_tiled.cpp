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
  ScoreTiles tiles;
  tiles.anchors = as_compute(anchors);
  tiles.candidates = as_compute(candidates);
  tiles.scale = params.scale;
  tiles.tile_elements = epilogue.tile_elements;
  tiles.parallel_row_blocks = epilogue.parallel_row_blocks;
  return tiles;
}

}  // namespace

InfoNceParams info_nce_check_args(const at::Tensor& anchors,
                                  const at::Tensor& candidates, double scale,
                                  double softcap, int64_t mask,
                                  int64_t block_size, int64_t row_offset) {
  TORCH_CHECK(anchors.dim() == 2,
              "info_nce_lse: anchors must be 2-D (N, D), got shape ",
              anchors.sizes());
  TORCH_CHECK(candidates.dim() == 2,
              "info_nce_lse: candidates must be 2-D (M, D), got shape ",
              candidates.sizes());
  TORCH_CHECK(anchors.size(1) == candidates.size(1),
              "info_nce_lse: anchors (N, D) and candidates (M, D) must share "
              "D, got ",
              anchors.sizes(), " and ", candidates.sizes());
  TORCH_CHECK(anchors.scalar_type() == candidates.scalar_type(),
              "info_nce_lse: anchors and candidates must have the same dtype, "
              "got ",
              anchors.scalar_type(), " and ", candidates.scalar_type());
  TORCH_CHECK(at::isFloatingType(anchors.scalar_type()),
              "info_nce_lse: expected a floating dtype (float16, bfloat16, "
              "float32, float64), got ",
              anchors.scalar_type());
  TORCH_CHECK(anchors.device() == candidates.device(),
              "info_nce_lse: anchors and candidates must be on the same "
              "device, got ",
              anchors.device(), " and ", candidates.device());
  TORCH_CHECK(mask >= 0 && mask <= 2,
              "info_nce_lse: mask must be 0 (none), 1 (diag) or 2 (block), got ",
              mask);
  TORCH_CHECK(softcap >= 0.0, "info_nce_lse: softcap must be >= 0, got ",
              softcap);
  TORCH_CHECK(row_offset >= 0, "info_nce_lse: row_offset must be >= 0, got ",
              row_offset);
  const int64_t n = anchors.size(0);
  const int64_t m = candidates.size(0);
  InfoNceParams params;
  params.scale = scale;
  params.softcap = softcap;
  params.mask = static_cast<InfoNceMask>(mask);
  params.block_size = block_size;
  params.row_offset = row_offset;
  if (params.mask == InfoNceMask::kDiag) {
    TORCH_CHECK(row_offset + n <= m,
                "info_nce_lse: mask 'diag' needs N + row_offset <= M, got N=",
                n, ", M=", m, ", row_offset=", row_offset);
  }
  if (params.mask == InfoNceMask::kBlock) {
    TORCH_CHECK(block_size >= 1 && m % block_size == 0,
                "info_nce_lse: mask 'block' needs block_size >= 1 dividing M, "
                "got block_size=",
                block_size, ", M=", m);
  }
  return params;
}

at::Tensor info_nce_lse_forward_tiled(const at::Tensor& anchors,
                                      const at::Tensor& candidates,
                                      const InfoNceParams& params,
                                      const InfoNceEpilogue& epilogue) {
  const auto tiles = make_tiles(anchors, candidates, params, epilogue);
  // -inf stays for every row when there is no candidate at all.
  auto lse = at::full({anchors.size(0)}, kNegInf, tiles.anchors.options());
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
  const auto opts = tiles.anchors.options();
  auto lse = at::full({anchors.size(0)}, kNegInf, opts);
  const auto weight = row_weight.to(opts.dtype()).contiguous();
  tiles.grad_a = at::empty_like(tiles.anchors);
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
  const auto dtype = tiles.anchors.scalar_type();
  const auto saved_lse = lse.to(dtype).contiguous();
  const auto upstream = grad_lse.to(dtype).contiguous();
  if (need_anchors) tiles.grad_a = at::empty_like(tiles.anchors);
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
