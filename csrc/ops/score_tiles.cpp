#include "score_tiles.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <vector>

namespace csl_ext {
namespace {

// Anchor rows [begin, end) in tiles of `rows`, dB accumulated into grad_b.
void run_row_range(const ScoreTiles& tiles, const ScoreTileEpilogue& epilogue,
                   int64_t begin, int64_t end, int64_t rows,
                   at::Tensor& workspace, at::Tensor& grad_b) {
  const auto candidates_t = tiles.candidates.t();  // D x M
  for (int64_t r0 = begin; r0 < end; r0 += rows) {
    const int64_t r = std::min(rows, end - r0);
    auto tile = workspace.narrow(0, 0, r);  // R x M
    const auto anchors_rows = tiles.anchors.narrow(0, r0, r);
    at::addmm_out(tile, tile, anchors_rows, candidates_t, /*beta=*/0,
                  /*alpha=*/tiles.scale);
    epilogue(tile, r0);
    if (tiles.grad_a.defined()) {
      auto grad_a_rows = tiles.grad_a.narrow(0, r0, r);
      at::addmm_out(grad_a_rows, grad_a_rows, tile, tiles.candidates, 0,
                    tiles.scale);
    }
    if (tiles.need_grad_b) {  // the first tile overwrites: no zero fill
      grad_b.addmm_(tile.t(), anchors_rows, r0 == begin ? 0 : 1, tiles.scale);
    }
  }
}

}  // namespace

at::ScalarType compute_dtype(const at::Tensor& t) {
  const auto type = t.scalar_type();
  return (type == at::kHalf || type == at::kBFloat16) ? at::kFloat : type;
}

at::Tensor as_compute(const at::Tensor& t) {
  return t.to(compute_dtype(t)).contiguous();
}

at::Tensor for_each_score_tile(const ScoreTiles& tiles,
                               const ScoreTileEpilogue& epilogue) {
  const int64_t n = tiles.anchors.size(0);
  const int64_t m = tiles.candidates.size(0);
  const auto opts = tiles.anchors.options();
  const int64_t d = tiles.anchors.size(1);
  // dB buffers are overwritten by their first tile's GEMM (beta = 0).
  auto new_grad_b = [&] {
    return tiles.need_grad_b ? at::empty({m, d}, opts) : at::Tensor();
  };
  if (n == 0 || m == 0) {
    if (tiles.grad_a.defined()) tiles.grad_a.zero_();
    return tiles.need_grad_b ? at::zeros({m, d}, opts) : at::Tensor();
  }
  const int64_t rows =
      std::max<int64_t>(1, std::min<int64_t>(n, tiles.tile_elements / m));
  const int64_t blocks = (n + rows - 1) / rows;
  if (!tiles.parallel_row_blocks || blocks == 1) {
    auto workspace = at::empty({rows, m}, opts);
    auto grad_b = new_grad_b();
    run_row_range(tiles, epilogue, 0, n, rows, workspace, grad_b);
    return grad_b;
  }
  // One contiguous range of blocks per thread, each with its own workspace
  // and dB partial; ops called inside the region run single-threaded.
  std::vector<at::Tensor> partials(at::get_num_threads());
  // OpenMP workers start with the default dispatch state (autograd on): give
  // them the caller's, so the ATen ops below run as on the calling thread.
  const at::ThreadLocalState caller_state;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    const at::ThreadLocalStateGuard state_guard(caller_state);
    auto workspace = at::empty({rows, m}, opts);
    auto grad_b = new_grad_b();
    run_row_range(tiles, epilogue, first * rows, std::min(n, last * rows),
                  rows, workspace, grad_b);
    partials[at::get_thread_num()] = grad_b;
  });
  at::Tensor total;
  for (const auto& partial : partials) {  // thread order: deterministic
    if (!partial.defined()) continue;
    total = total.defined() ? total.add_(partial) : partial;
  }
  return total;  // undefined when dB is not needed
}

}  // namespace csl_ext
