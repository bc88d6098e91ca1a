#include "info_nce_lse_tiled.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace csl_ext {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Half and bfloat16 inputs are computed in float32 (fp32 accumulation);
// float and double in their own precision.
at::ScalarType compute_dtype(const at::Tensor& t) {
  const auto type = t.scalar_type();
  return (type == at::kHalf || type == at::kBFloat16) ? at::kFloat : type;
}

at::Tensor as_compute(const at::Tensor& t) {
  return t.to(compute_dtype(t)).contiguous();
}

// What one pass over the tiles reads and writes. Forward passes write `lse`;
// the backward reads `saved_lse`. `row_scale` multiplies each row's softmax:
// the loss weights (with-grad) or the incoming gradient (backward).
struct TilePass {
  at::Tensor anchors;     // N x D, compute dtype, contiguous
  at::Tensor candidates;  // M x D
  at::Tensor lse;         // N, written when defined
  at::Tensor saved_lse;   // N, read when defined (backward)
  at::Tensor row_scale;   // N, defined when gradients are computed
  at::Tensor grad_a;      // N x D, written when defined
  bool need_grad_b = false;
};

// Processes anchor rows [begin, end) in tiles of `rows`, accumulating dB into
// grad_b (M x D) when the pass needs it.
void run_row_range(const TilePass& pass, const InfoNceParams& params,
                   const InfoNceEpilogue& epilogue, int64_t begin, int64_t end,
                   int64_t rows, at::Tensor& workspace, at::Tensor& grad_b) {
  const auto candidates_t = pass.candidates.t();  // D x M
  const bool gradients = pass.row_scale.defined();
  for (int64_t r0 = begin; r0 < end; r0 += rows) {
    const int64_t r = std::min(rows, end - r0);
    auto tile = workspace.narrow(0, 0, r);  // R x M scores
    const auto anchors_rows = pass.anchors.narrow(0, r0, r);
    at::addmm_out(tile, tile, anchors_rows, candidates_t, /*beta=*/0,
                  /*alpha=*/params.scale);
    at::Tensor lse_rows;  // undefined: logits only (backward)
    if (pass.lse.defined()) lse_rows = pass.lse.narrow(0, r0, r);
    if (gradients && lse_rows.defined() &&
        epilogue.logits_lse_and_score_grad != nullptr) {
      epilogue.logits_lse_and_score_grad(
          tile, lse_rows, pass.row_scale.narrow(0, r0, r), params, r0);
    } else {
      epilogue.logits_and_lse(tile, lse_rows, params, r0);
      if (!gradients) continue;
      const auto softmax_lse = pass.saved_lse.defined()
                                   ? pass.saved_lse.narrow(0, r0, r)
                                   : lse_rows;
      epilogue.score_grad(tile, softmax_lse, pass.row_scale.narrow(0, r0, r),
                          params, r0);
    }
    if (pass.grad_a.defined()) {
      auto grad_a_rows = pass.grad_a.narrow(0, r0, r);
      at::addmm_out(grad_a_rows, grad_a_rows, tile, pass.candidates, 0,
                    params.scale);
    }
    if (pass.need_grad_b) grad_b.addmm_(tile.t(), anchors_rows, 1, params.scale);
  }
}

// Runs the pass over all rows; returns dB (M x D) when the pass needs it.
at::Tensor run_pass(const TilePass& pass, const InfoNceParams& params,
                    const InfoNceEpilogue& epilogue) {
  const int64_t n = pass.anchors.size(0);
  const int64_t m = pass.candidates.size(0);
  const auto opts = pass.anchors.options();
  auto new_grad_b = [&] {
    return pass.need_grad_b ? at::zeros({m, pass.anchors.size(1)}, opts)
                            : at::Tensor();
  };
  if (n == 0 || m == 0) return new_grad_b();
  const int64_t rows = std::max<int64_t>(
      1, std::min<int64_t>(n, epilogue.tile_elements / m));
  const int64_t blocks = (n + rows - 1) / rows;
  if (!epilogue.parallel_row_blocks || blocks == 1) {
    auto workspace = at::empty({rows, m}, opts);
    auto grad_b = new_grad_b();
    run_row_range(pass, params, epilogue, 0, n, rows, workspace, grad_b);
    return grad_b;
  }
  // One contiguous range of blocks per thread, each with its own workspace
  // and dB partial; ops called inside the region run single-threaded.
  std::vector<at::Tensor> partials(at::get_num_threads());
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    auto workspace = at::empty({rows, m}, opts);
    auto grad_b = new_grad_b();
    run_row_range(pass, params, epilogue, first * rows,
                  std::min(n, last * rows), rows, workspace, grad_b);
    partials[at::get_thread_num()] = grad_b;
  });
  at::Tensor total;
  for (const auto& partial : partials) {  // thread order: deterministic
    if (!partial.defined()) continue;
    total = total.defined() ? total.add_(partial) : partial;
  }
  return total.defined() ? total : new_grad_b();
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
  TilePass pass;
  pass.anchors = as_compute(anchors);
  pass.candidates = as_compute(candidates);
  // -inf stays for every row when there is no candidate at all.
  pass.lse = at::full({anchors.size(0)}, kNegInf, pass.anchors.options());
  run_pass(pass, params, epilogue);
  return pass.lse;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_lse_with_grad_tiled(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const at::Tensor& row_weight, const InfoNceParams& params,
    const InfoNceEpilogue& epilogue) {
  TORCH_CHECK(row_weight.dim() == 1 && row_weight.size(0) == anchors.size(0),
              "info_nce_lse: row_weight must have shape (N,) = (",
              anchors.size(0), ",), got ", row_weight.sizes());
  TilePass pass;
  pass.anchors = as_compute(anchors);
  pass.candidates = as_compute(candidates);
  const auto opts = pass.anchors.options();
  pass.lse = at::full({anchors.size(0)}, kNegInf, opts);
  pass.row_scale = row_weight.to(opts.dtype()).contiguous();
  pass.grad_a = at::zeros_like(pass.anchors);
  pass.need_grad_b = true;
  auto grad_b = run_pass(pass, params, epilogue);
  // Kept in the compute dtype: the backward rescales them before casting.
  return {pass.lse, pass.grad_a, grad_b};
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
  TilePass pass;
  pass.anchors = as_compute(anchors);
  pass.candidates = as_compute(candidates);
  const auto dtype = pass.anchors.scalar_type();
  pass.saved_lse = lse.to(dtype).contiguous();
  pass.row_scale = grad_lse.to(dtype).contiguous();
  if (need_anchors) pass.grad_a = at::zeros_like(pass.anchors);
  pass.need_grad_b = need_candidates;
  at::Tensor grad_b;
  if (need_anchors || need_candidates) grad_b = run_pass(pass, params, epilogue);
  // A gradient that was not asked for is an empty (0,) tensor.
  return {need_anchors ? pass.grad_a.to(anchors.scalar_type())
                       : at::empty({0}, anchors.options()),
          need_candidates ? grad_b.to(candidates.scalar_type())
                          : at::empty({0}, candidates.options())};
}

}  // namespace csl_ext
