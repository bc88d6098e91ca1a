#include "score_tiles.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <vector>

// MKL (which x86 builds of torch link) runs a GEMM called inside a parallel
// region on nested threads of its own; with several threads per core, e.g.
// a shared machine, each of the many small per-image GEMMs of the maps
// layout then waits on a contended pool (~10x slower). The workers below ask
// for one BLAS thread each through MKL's Fortran binding (argument by
// pointer; torch exports it, and its C name is an alias of it). Weak: absent
// in builds without MKL.
#if defined(__GNUC__) && defined(__linux__)
extern "C" int mkl_set_num_threads_local_(const int* threads)
    __attribute__((weak));
#else
static int (*const mkl_set_num_threads_local_)(const int*) = nullptr;
#endif

namespace csl_ext {
namespace {

// One BLAS thread for this thread while alive (MKL only; else nothing).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    if (mkl_set_num_threads_local_ != nullptr) {
      const int one = 1;
      previous_ = mkl_set_num_threads_local_(&one);
    }
  }
  ~SingleThreadedBlas() {
    if (mkl_set_num_threads_local_ != nullptr) {
      mkl_set_num_threads_local_(&previous_);  // 0: back to the global setting
    }
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_ = 0;
};

// tile = scale * A_R B^T (float32 out of low-precision inputs).
void score_gemm(const ScoreTiles& tiles, const at::Tensor& anchors_rows,
                at::Tensor& tile) {
  if (!tiles.maps()) {
    if (tiles.low_precision_gemm) {
      at::addmm_out(tile, tile, anchors_rows, tiles.candidates.t(), at::kFloat,
                    /*beta=*/0, /*alpha=*/tiles.scale);
    } else {
      at::addmm_out(tile, tile, anchors_rows, tiles.candidates.t(),
                    /*beta=*/0, /*alpha=*/tiles.scale);
    }
    return;
  }
  // One (R x D) x (D x L) product per image k into columns k*L .. k*L+L-1.
  const int64_t k = tiles.candidates.size(0);
  const int64_t l = tiles.candidates.size(2);
  auto columns = tile.view({tile.size(0), k, l}).permute({1, 0, 2});
  const auto anchors_k = anchors_rows.expand({k, -1, -1});
  if (tiles.low_precision_gemm) {
    at::baddbmm_out(columns, columns, anchors_k, tiles.candidates, at::kFloat,
                    /*beta=*/0, /*alpha=*/tiles.scale);
  } else {
    columns.baddbmm_(anchors_k, tiles.candidates, /*beta=*/0,
                     /*alpha=*/tiles.scale);
  }
}

// out (+)= alpha * a b, float32 out of low-precision a and b when asked.
void accumulate_mm(at::Tensor& out, const at::Tensor& a, const at::Tensor& b,
                   double beta, double alpha, bool low_precision) {
  if (low_precision) {
    at::addmm_out(out, out, a, b, at::kFloat, beta, alpha);
  } else {
    out.addmm_(a, b, beta, alpha);
  }
}

// grad_a_rows = scale * dS B. `grad_tile` is dS in the GEMMs' dtype.
void anchors_grad_gemm(const ScoreTiles& tiles, const at::Tensor& grad_tile,
                       at::Tensor& grad_a_rows) {
  const bool low = tiles.low_precision_gemm;
  if (!tiles.maps()) {
    accumulate_mm(grad_a_rows, grad_tile, tiles.candidates, 0, tiles.scale,
                  low);
    return;
  }
  // A sum over images of (R x L) x (L x D) products (no batched form writes
  // one sum without an (K, R, D) temporary).
  const int64_t k = tiles.candidates.size(0);
  const int64_t l = tiles.candidates.size(2);
  for (int64_t image = 0; image < k; ++image) {
    accumulate_mm(grad_a_rows, grad_tile.narrow(1, image * l, l),
                  tiles.candidates.select(0, image).t(), image == 0 ? 0 : 1,
                  tiles.scale, low);
  }
}

// grad_b (+)= scale * dS^T A_R; beta 0 overwrites.
void candidates_grad_gemm(const ScoreTiles& tiles, const at::Tensor& grad_tile,
                          const at::Tensor& anchors_rows, at::Tensor& grad_b,
                          double beta) {
  const bool low = tiles.low_precision_gemm;
  if (!tiles.maps()) {
    accumulate_mm(grad_b, grad_tile.t(), anchors_rows, beta, tiles.scale, low);
    return;
  }
  // grad_b[k] (D x L) (+)= scale * A_R^T (D x R) dS_k (R x L), batched.
  const int64_t k = tiles.candidates.size(0);
  const int64_t l = tiles.candidates.size(2);
  const auto columns =
      grad_tile.view({grad_tile.size(0), k, l}).permute({1, 0, 2});
  const auto anchors_k = anchors_rows.t().expand({k, -1, -1});
  if (low) {
    at::baddbmm_out(grad_b, grad_b, anchors_k, columns, at::kFloat, beta,
                    tiles.scale);
  } else {
    grad_b.baddbmm_(anchors_k, columns, beta, tiles.scale);
  }
}

// Anchor rows [begin, end) in tiles of `rows`, dB accumulated into grad_b.
void run_row_range(const ScoreTiles& tiles, const ScoreTileEpilogue& epilogue,
                   int64_t begin, int64_t end, int64_t rows,
                   at::Tensor& workspace, at::Tensor& grad_b) {
  for (int64_t r0 = begin; r0 < end; r0 += rows) {
    const int64_t r = std::min(rows, end - r0);
    auto tile = workspace.narrow(0, 0, r);  // R x M
    const auto anchors_rows = tiles.anchors.narrow(0, r0, r);
    score_gemm(tiles, anchors_rows, tile);
    epilogue(tile, r0);
    if (!tiles.grad_a.defined() && !tiles.need_grad_b) continue;
    // dS in the inputs' precision for the low-precision GEMMs.
    const auto grad_tile =
        tiles.low_precision_gemm ? tile.to(tiles.anchors.scalar_type()) : tile;
    if (tiles.grad_a.defined()) {
      auto grad_a_rows = tiles.grad_a.narrow(0, r0, r);
      anchors_grad_gemm(tiles, grad_tile, grad_a_rows);
    }
    if (tiles.need_grad_b) {  // the first tile overwrites: no zero fill
      candidates_grad_gemm(tiles, grad_tile, anchors_rows, grad_b,
                           r0 == begin ? 0 : 1);
    }
  }
}

}  // namespace

int64_t ScoreTiles::num_candidates() const {
  return maps() ? candidates.size(0) * candidates.size(2) : candidates.size(0);
}

at::TensorOptions ScoreTiles::compute_options() const {
  return anchors.options().dtype(compute_dtype(anchors));
}

ScoreTiles make_score_tiles(const at::Tensor& anchors,
                            const at::Tensor& candidates, double scale,
                            int64_t tile_elements, bool parallel_row_blocks,
                            bool low_precision_gemm) {
  ScoreTiles tiles;
  tiles.low_precision_gemm =
      low_precision_gemm && compute_dtype(anchors) != anchors.scalar_type();
  tiles.anchors =
      tiles.low_precision_gemm ? anchors.contiguous() : as_compute(anchors);
  tiles.candidates = tiles.low_precision_gemm ? candidates.contiguous()
                                              : as_compute(candidates);
  tiles.scale = scale;
  tiles.tile_elements = tile_elements;
  tiles.parallel_row_blocks = parallel_row_blocks;
  return tiles;
}

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
  const int64_t m = tiles.num_candidates();
  const auto opts = tiles.compute_options();
  // dB buffers are overwritten by their first tile's GEMM (beta = 0).
  auto new_grad_b = [&] {
    return tiles.need_grad_b ? at::empty(tiles.candidates.sizes(), opts)
                             : at::Tensor();
  };
  if (n == 0 || m == 0) {
    if (tiles.grad_a.defined()) tiles.grad_a.zero_();
    return tiles.need_grad_b ? at::zeros(tiles.candidates.sizes(), opts)
                             : at::Tensor();
  }
  int64_t rows =
      std::max<int64_t>(1, std::min<int64_t>(n, tiles.tile_elements / m));
  if (tiles.parallel_row_blocks) {  // at least one block per thread
    const int64_t threads = at::get_num_threads();
    rows = std::max<int64_t>(1, std::min(rows, (n + threads - 1) / threads));
  }
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
    const SingleThreadedBlas one_blas_thread;
    auto workspace = at::empty({rows, m}, opts);
    auto grad_b = new_grad_b();
    run_row_range(tiles, epilogue, first * rows, std::min(n, last * rows), rows,
                  workspace, grad_b);
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
