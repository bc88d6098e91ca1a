// CPU epilogue of the fused InfoNCE op and its registration.
//
// Each row of a tile (e.g. 8192 logits, 32 KiB, resident in L1/L2) goes
// through a few short vectorised loops (vector_rows.h): cap and mask, max and
// sum of exp, and for the gradient the scaled softmax. The tile loop spreads
// row blocks over threads, so the row loop here runs inside that region (its
// parallel_for then runs inline) or, for a single block, in parallel itself.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../info_nce_lse_registration.h"
#include "vector_rows.h"

namespace csl_ext {
namespace {

using namespace vector_rows;  // NOLINT: the row loops of vector_rows.h

// Sets the entries of `row` that anchor `anchor` must not see to `value`:
// one column for "diag", one block of columns for "block".
template <typename T>
void fill_masked(T* row, int64_t m, const InfoNceParams& params, int64_t anchor,
                 T value) {
  int64_t begin = 0, end = 0;
  if (params.mask == InfoNceMask::kDiag) {
    begin = anchor;
    end = anchor + 1;
  } else if (params.mask == InfoNceMask::kBlock) {
    begin = anchor * params.block_size;
    end = begin + params.block_size;
  }
  for (int64_t j = std::max<int64_t>(begin, 0); j < std::min(end, m); ++j) {
    row[j] = value;
  }
}

// Rows per parallel task: a few rows amortise the task, e.g. 8 x 32 KiB.
constexpr int64_t kRowGrain = 8;

template <typename T>
void logits_and_lse_rows(at::Tensor& tile, at::Tensor& lse,
                         const InfoNceParams& params, int64_t row0) {
  const int64_t m = tile.size(1);
  T* data = tile.data_ptr<T>();
  T* lse_data = lse.defined() ? lse.data_ptr<T>() : nullptr;
  const T cap = static_cast<T>(params.softcap);
  const T neg_inf = -std::numeric_limits<T>::infinity();
  at::parallel_for(0, tile.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T* row = data + r * m;
      if (cap > 0) cap_row(row, m, cap);
      fill_masked(row, m, params, row0 + r + params.row_offset, neg_inf);
      if (lse_data == nullptr) continue;
      const T row_max = max_row(row, m);
      lse_data[r] = row_max == neg_inf
                        ? neg_inf  // every candidate masked
                        : row_max + std::log(sum_exp_row(row, m, row_max));
    }
  });
}

template <typename T>
void score_grad_rows(at::Tensor& tile, const at::Tensor& lse,
                     const at::Tensor& row_scale, const InfoNceParams& params,
                     int64_t row0) {
  const int64_t m = tile.size(1);
  T* data = tile.data_ptr<T>();
  const T* lse_data = lse.data_ptr<T>();
  const T* scale_data = row_scale.data_ptr<T>();
  const T cap = static_cast<T>(params.softcap);
  at::parallel_for(0, tile.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T* row = data + r * m;
      if (std::isinf(lse_data[r])) {  // all masked: no gradient
        std::fill(row, row + m, T(0));
        continue;
      }
      grad_row(row, m, lse_data[r], scale_data[r], cap);
      fill_masked(row, m, params, row0 + r + params.row_offset, T(0));
    }
  });
}

template <typename T>
void logits_lse_and_grad_rows(at::Tensor& tile, at::Tensor& lse,
                              const at::Tensor& row_scale,
                              const InfoNceParams& params, int64_t row0) {
  const int64_t m = tile.size(1);
  T* data = tile.data_ptr<T>();
  T* lse_data = lse.data_ptr<T>();
  const T* scale_data = row_scale.data_ptr<T>();
  const T cap = static_cast<T>(params.softcap);
  const T neg_inf = -std::numeric_limits<T>::infinity();
  at::parallel_for(0, tile.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T* row = data + r * m;
      const int64_t anchor = row0 + r + params.row_offset;
      if (cap > 0) cap_row(row, m, cap);
      fill_masked(row, m, params, anchor, neg_inf);
      const T row_max = max_row(row, m);
      if (row_max == neg_inf) {  // every candidate masked: no gradient
        lse_data[r] = neg_inf;
        std::fill(row, row + m, T(0));
        continue;
      }
      const T sum = exp_and_grad_row(row, m, row_max, cap);
      lse_data[r] = row_max + std::log(sum);
      scale_row(row, m, scale_data[r] / sum);
      fill_masked(row, m, params, anchor, T(0));
    }
  });
}

void info_nce_logits_and_lse_cpu(at::Tensor& tile, at::Tensor& lse,
                                 const InfoNceParams& params, int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(
      tile.scalar_type(), "info_nce_logits_and_lse",
      [&] { logits_and_lse_rows<scalar_t>(tile, lse, params, row0); });
}

void info_nce_score_grad_cpu(at::Tensor& tile, const at::Tensor& lse,
                             const at::Tensor& row_scale,
                             const InfoNceParams& params, int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "info_nce_score_grad", [&] {
    score_grad_rows<scalar_t>(tile, lse, row_scale, params, row0);
  });
}

void info_nce_logits_lse_and_grad_cpu(at::Tensor& tile, at::Tensor& lse,
                                      const at::Tensor& row_scale,
                                      const InfoNceParams& params,
                                      int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "info_nce_lse_and_grad", [&] {
    logits_lse_and_grad_rows<scalar_t>(tile, lse, row_scale, params, row0);
  });
}

// 2^20 floats (4 MiB) per thread: e.g. 128 rows of 8192 candidates.
const InfoNceEpilogue kCpuEpilogue{&info_nce_logits_and_lse_cpu,
                                   &info_nce_score_grad_cpu,
                                   &info_nce_logits_lse_and_grad_cpu,
                                   /*tile_elements=*/int64_t{1} << 20,
                                   /*parallel_row_blocks=*/true,
                                   /*low_precision_gemm=*/false};

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CPU, m) {
  InfoNceRegistration<&kCpuEpilogue>::register_impls(m);
}

}  // namespace csl_ext
