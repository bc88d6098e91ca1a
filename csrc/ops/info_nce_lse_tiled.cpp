#include "info_nce_lse_tiled.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace csl_ext {
namespace {

bool is_reduced_precision(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

// Half and bfloat16 inputs are computed in float32 (fp32 accumulation);
// float and double in their own precision.
at::ScalarType compute_dtype(const at::Tensor& t) {
  return is_reduced_precision(t) ? at::kFloat : t.scalar_type();
}

at::Tensor as_compute(const at::Tensor& t) {
  return t.to(compute_dtype(t)).contiguous();
}

int64_t rows_per_tile(const InfoNceEpilogue& epilogue, int64_t n, int64_t m) {
  return std::max<int64_t>(1, std::min<int64_t>(n, epilogue.tile_elements /
                                                       std::max<int64_t>(m, 1)));
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
                "info_nce_lse: mask 'diag' needs N + row_offset <= M (N == M "
                "without offset), got N=",
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

at::Tensor info_nce_lse_forward_tiled(const at::Tensor& anchors_in,
                                      const at::Tensor& candidates_in,
                                      const InfoNceParams& params,
                                      const InfoNceEpilogue& epilogue) {
  const int64_t n = anchors_in.size(0);
  const int64_t m = candidates_in.size(0);
  const auto dtype = compute_dtype(anchors_in);
  auto lse = at::empty({n}, anchors_in.options().dtype(dtype));
  if (n == 0) return lse;
  if (m == 0) return lse.fill_(-std::numeric_limits<double>::infinity());

  const auto anchors = as_compute(anchors_in);
  const auto candidates_t = as_compute(candidates_in).t();  // D x M
  const int64_t rows = rows_per_tile(epilogue, n, m);
  auto workspace = at::empty({rows, m}, anchors.options());
  for (int64_t r0 = 0; r0 < n; r0 += rows) {
    const int64_t r = std::min(rows, n - r0);
    auto tile = workspace.narrow(0, 0, r);  // R x M scores
    at::addmm_out(tile, tile, anchors.narrow(0, r0, r), candidates_t,
                  /*beta=*/0, /*alpha=*/params.scale);
    auto lse_rows = lse.narrow(0, r0, r);
    epilogue.logits_and_lse(tile, lse_rows, params, r0);
  }
  return lse;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_lse_with_grad_tiled(
    const at::Tensor& anchors_in, const at::Tensor& candidates_in,
    const at::Tensor& row_weight_in, const InfoNceParams& params,
    const InfoNceEpilogue& epilogue) {
  TORCH_CHECK(row_weight_in.dim() == 1 &&
                  row_weight_in.size(0) == anchors_in.size(0),
              "info_nce_lse: row_weight must have shape (N,) = (",
              anchors_in.size(0), ",), got ", row_weight_in.sizes());
  const int64_t n = anchors_in.size(0);
  const int64_t m = candidates_in.size(0);
  const auto dtype = compute_dtype(anchors_in);
  auto lse = at::empty({n}, anchors_in.options().dtype(dtype));
  auto grad_a = at::zeros({n, anchors_in.size(1)}, lse.options());
  auto grad_b = at::zeros({m, anchors_in.size(1)}, lse.options());
  if (n > 0 && m == 0) lse.fill_(-std::numeric_limits<double>::infinity());
  if (n > 0 && m > 0) {
    const auto anchors = as_compute(anchors_in);
    const auto candidates = as_compute(candidates_in);
    const auto candidates_t = candidates.t();
    const auto row_weight = row_weight_in.to(dtype).contiguous();
    const int64_t rows = rows_per_tile(epilogue, n, m);
    auto workspace = at::empty({rows, m}, anchors.options());
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
      const int64_t r = std::min(rows, n - r0);
      auto tile = workspace.narrow(0, 0, r);
      const auto anchors_rows = anchors.narrow(0, r0, r);
      at::addmm_out(tile, tile, anchors_rows, candidates_t, 0, params.scale);
      auto lse_rows = lse.narrow(0, r0, r);
      epilogue.logits_and_lse(tile, lse_rows, params, r0);
      epilogue.score_grad(tile, lse_rows, row_weight.narrow(0, r0, r), params,
                          r0);
      auto grad_a_rows = grad_a.narrow(0, r0, r);
      at::addmm_out(grad_a_rows, grad_a_rows, tile, candidates, 0,
                    params.scale);
      grad_b.addmm_(tile.t(), anchors_rows, 1, params.scale);
    }
  }
  // Kept in the compute dtype: the backward rescales them before casting.
  return {lse, grad_a, grad_b};
}

std::tuple<at::Tensor, at::Tensor> info_nce_lse_backward_tiled(
    const at::Tensor& grad_lse_in, const at::Tensor& anchors_in,
    const at::Tensor& candidates_in, const at::Tensor& lse_in,
    const InfoNceParams& params, bool need_anchors, bool need_candidates,
    const InfoNceEpilogue& epilogue) {
  const int64_t n = anchors_in.size(0);
  const int64_t m = candidates_in.size(0);
  TORCH_CHECK(grad_lse_in.dim() == 1 && grad_lse_in.size(0) == n,
              "info_nce_lse_backward: grad_lse must have shape (N,), got ",
              grad_lse_in.sizes());
  TORCH_CHECK(lse_in.dim() == 1 && lse_in.size(0) == n,
              "info_nce_lse_backward: lse must have shape (N,), got ",
              lse_in.sizes());
  const auto dtype = compute_dtype(anchors_in);
  const auto opts = anchors_in.options().dtype(dtype);
  at::Tensor grad_a, grad_b;
  if (need_anchors) grad_a = at::zeros({n, anchors_in.size(1)}, opts);
  if (need_candidates) grad_b = at::zeros({m, anchors_in.size(1)}, opts);
  if (n > 0 && m > 0 && (need_anchors || need_candidates)) {
    const auto anchors = as_compute(anchors_in);
    const auto candidates = as_compute(candidates_in);
    const auto candidates_t = candidates.t();
    const auto grad_lse = grad_lse_in.to(dtype).contiguous();
    const auto lse = lse_in.to(dtype).contiguous();
    const int64_t rows = rows_per_tile(epilogue, n, m);
    auto workspace = at::empty({rows, m}, opts);
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
      const int64_t r = std::min(rows, n - r0);
      auto tile = workspace.narrow(0, 0, r);
      const auto anchors_rows = anchors.narrow(0, r0, r);
      at::addmm_out(tile, tile, anchors_rows, candidates_t, 0, params.scale);
      at::Tensor no_lse;  // the saved lse is reused: logits only
      epilogue.logits_and_lse(tile, no_lse, params, r0);
      epilogue.score_grad(tile, lse.narrow(0, r0, r),
                          grad_lse.narrow(0, r0, r), params, r0);
      if (need_anchors) {
        auto grad_a_rows = grad_a.narrow(0, r0, r);
        at::addmm_out(grad_a_rows, grad_a_rows, tile, candidates, 0,
                      params.scale);
      }
      if (need_candidates) {
        grad_b.addmm_(tile.t(), anchors_rows, 1, params.scale);
      }
    }
  }
  // A gradient that was not asked for is an empty (0,) tensor.
  grad_a = need_anchors ? grad_a.to(anchors_in.scalar_type())
                        : at::empty({0}, anchors_in.options());
  grad_b = need_candidates ? grad_b.to(candidates_in.scalar_type())
                           : at::empty({0}, candidates_in.options());
  return {grad_a, grad_b};
}

}  // namespace csl_ext
