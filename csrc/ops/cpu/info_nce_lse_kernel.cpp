// CPU epilogue of the fused InfoNCE op and its registration.
//
// Each row of a tile (e.g. 8192 logits, 32 KiB, resident in L1/L2) goes
// through three short loops: cap and mask, max and sum of exp, and for the
// gradient the scaled softmax. float rows use a branch-free exp that GCC
// vectorises, compiled for AVX-512, AVX2 and baseline x86-64 (target_clones
// picks one at load time); double rows use std::exp. The driver spreads row
// blocks over threads, so the row loop here runs inside that region (its
// parallel_for then runs inline) or, for a single block, in parallel itself.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../info_nce_lse_entry.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CSL_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CSL_CPU_CLONES
#endif

namespace csl_ext {
namespace {

// exp(x) for x <= 88.7 with about 1 ulp of error: x = n ln2 + r with
// |r| <= ln2 / 2, exp(r) by a degree-7 minimax polynomial (Cephes' expf
// coefficients), 2^n by building the float's exponent bits. Inputs below
// -87.3 (the smallest normal float's log), -inf included, give 2^-126 ~ 1e-38
// instead of 0: callers handle masked entries and all -inf rows themselves.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.33654f), 88.72283f);
  const float n = std::floor(x * 1.44269504f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// c * tanh(x / c) through exp: tanh(|y|) = (1 - e^(-2|y|)) / (1 + e^(-2|y|)).
inline float softcap_approx(float x, float cap) {
  const float y = std::fabs(x) / cap;
  const float e = exp_approx(-2.0f * y);
  return std::copysign(cap * (1.0f - e) / (1.0f + e), x);
}

inline double exp_exact(double x) { return std::exp(x); }
inline double softcap_exact(double x, double cap) {
  return info_nce_softcap(x, cap);
}

// Row loops, written once for both precisions; Exp and Cap are compile-time
// constants so they inline and the loops vectorise.
template <typename T, T (*Cap)(T, T)>
inline void cap_row_impl(T* row, int64_t m, T cap) {
  for (int64_t j = 0; j < m; ++j) row[j] = Cap(row[j], cap);
}

template <typename T>
inline T max_row_impl(const T* row, int64_t m) {
  T best = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : best)
  for (int64_t j = 0; j < m; ++j) best = row[j] > best ? row[j] : best;
  return best;
}

template <typename T, T (*Exp)(T)>
inline T sum_exp_row_impl(const T* row, int64_t m, T shift) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) sum += Exp(row[j] - shift);
  return sum;
}

// row: logits -> weight * exp(l - lse) * dl/ds.
template <typename T, T (*Exp)(T)>
inline void grad_row_impl(T* row, int64_t m, T lse, T weight, T cap) {
  if (cap > 0) {
    const T inv_cap = T(1) / cap;
    for (int64_t j = 0; j < m; ++j) {
      const T t = row[j] * inv_cap;  // tanh of the raw score
      row[j] = weight * Exp(row[j] - lse) * (T(1) - t * t);
    }
  } else {
    for (int64_t j = 0; j < m; ++j) row[j] = weight * Exp(row[j] - lse);
  }
}

// The forward-with-gradient row in one exp per entry: row: logits ->
// exp(l - max) * dl/ds, returning sum_j exp(l - max); the caller rescales.
template <typename T, T (*Exp)(T)>
inline T exp_and_grad_row_impl(T* row, int64_t m, T row_max, T cap) {
  T sum = 0;
  if (cap > 0) {
    const T inv_cap = T(1) / cap;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < m; ++j) {
      const T t = row[j] * inv_cap;
      const T e = Exp(row[j] - row_max);
      sum += e;
      row[j] = e * (T(1) - t * t);
    }
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < m; ++j) {
      const T e = Exp(row[j] - row_max);
      sum += e;
      row[j] = e;
    }
  }
  return sum;
}

template <typename T>
inline void scale_row_impl(T* row, int64_t m, T factor) {
  for (int64_t j = 0; j < m; ++j) row[j] *= factor;
}

// float: cloned per instruction set. double: plain (tests, not speed).
CSL_CPU_CLONES void cap_row(float* row, int64_t m, float cap) {
  cap_row_impl<float, softcap_approx>(row, m, cap);
}
CSL_CPU_CLONES float max_row(const float* row, int64_t m) {
  return max_row_impl(row, m);
}
CSL_CPU_CLONES float sum_exp_row(const float* row, int64_t m, float shift) {
  return sum_exp_row_impl<float, exp_approx>(row, m, shift);
}
CSL_CPU_CLONES void grad_row(float* row, int64_t m, float lse, float weight,
                             float cap) {
  grad_row_impl<float, exp_approx>(row, m, lse, weight, cap);
}
CSL_CPU_CLONES float exp_and_grad_row(float* row, int64_t m, float row_max,
                                      float cap) {
  return exp_and_grad_row_impl<float, exp_approx>(row, m, row_max, cap);
}
CSL_CPU_CLONES void scale_row(float* row, int64_t m, float factor) {
  scale_row_impl(row, m, factor);
}

void cap_row(double* row, int64_t m, double cap) {
  cap_row_impl<double, softcap_exact>(row, m, cap);
}
double max_row(const double* row, int64_t m) { return max_row_impl(row, m); }
double sum_exp_row(const double* row, int64_t m, double shift) {
  return sum_exp_row_impl<double, exp_exact>(row, m, shift);
}
void grad_row(double* row, int64_t m, double lse, double weight, double cap) {
  grad_row_impl<double, exp_exact>(row, m, lse, weight, cap);
}
double exp_and_grad_row(double* row, int64_t m, double row_max, double cap) {
  return exp_and_grad_row_impl<double, exp_exact>(row, m, row_max, cap);
}
void scale_row(double* row, int64_t m, double factor) {
  scale_row_impl(row, m, factor);
}

// Sets the entries of `row` that anchor `anchor` must not see to `value`:
// one column for "diag", one block of columns for "block".
template <typename T>
void fill_masked(T* row, int64_t m, const InfoNceParams& params,
                 int64_t anchor, T value) {
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
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "info_nce_logits_and_lse", [&] {
    logits_and_lse_rows<scalar_t>(tile, lse, params, row0);
  });
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
                                   /*parallel_row_blocks=*/true};

at::Tensor info_nce_lse_forward_cpu(const at::Tensor& anchors,
                                    const at::Tensor& candidates, double scale,
                                    double softcap, int64_t mask,
                                    int64_t block_size, int64_t row_offset) {
  return info_nce_lse_forward_kernel(kCpuEpilogue, anchors, candidates, scale,
                                     softcap, mask, block_size, row_offset);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> info_nce_lse_with_grad_cpu(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const at::Tensor& row_weight, double scale, double softcap, int64_t mask,
    int64_t block_size, int64_t row_offset) {
  return info_nce_lse_with_grad_kernel(kCpuEpilogue, anchors, candidates,
                                       row_weight, scale, softcap, mask,
                                       block_size, row_offset);
}

std::tuple<at::Tensor, at::Tensor> info_nce_lse_backward_cpu(
    const at::Tensor& grad_lse, const at::Tensor& anchors,
    const at::Tensor& candidates, const at::Tensor& lse, double scale,
    double softcap, int64_t mask, int64_t block_size, int64_t row_offset,
    bool need_anchors, bool need_candidates) {
  return info_nce_lse_backward_kernel(kCpuEpilogue, grad_lse, anchors,
                                      candidates, lse, scale, softcap, mask,
                                      block_size, row_offset, need_anchors,
                                      need_candidates);
}

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CPU, m) {
  m.impl("info_nce_lse", &info_nce_lse_forward_cpu);
  m.impl("info_nce_lse_with_grad", &info_nce_lse_with_grad_cpu);
  m.impl("info_nce_lse_backward", &info_nce_lse_backward_cpu);
}

}  // namespace csl_ext
