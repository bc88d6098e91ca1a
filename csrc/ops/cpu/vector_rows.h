// Vectorised row loops of the CPU epilogues (info_nce_lse, amdim_nce).
//
// float rows use a branch-free exp that GCC vectorises, and every float loop
// is compiled for AVX-512, AVX2 and baseline x86-64 (target_clones picks one
// when the library loads); double rows use std::exp (tests, not speed).
// Functions are `static`: each translation unit gets its own clones.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../info_nce_lse_math.h"

namespace csl_ext {
namespace vector_rows {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CSL_CPU_CLONES \
  __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CSL_CPU_CLONES
#endif

// exp(x) for x <= 88.7 with about 1 ulp of error: x = n ln2 + r with
// |r| <= ln2 / 2, exp(r) by a degree-7 minimax polynomial (Cephes' expf
// coefficients), 2^n by building the float's exponent bits. Inputs below
// -87.3 (the smallest normal float's log), -inf included, give 2^-126 ~ 1e-38
// instead of 0: callers handle masked entries and all -inf rows themselves.
static inline float exp_approx(float x) {
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
static inline float softcap_approx(float x, float cap) {
  const float y = std::fabs(x) / cap;
  const float e = exp_approx(-2.0f * y);
  return std::copysign(cap * (1.0f - e) / (1.0f + e), x);
}

// tanh(y) through exp, as softcap_approx.
static inline float tanh_approx(float y) {
  const float e = exp_approx(-2.0f * std::fabs(y));
  return std::copysign((1.0f - e) / (1.0f + e), y);
}
static inline double exp_exact(double x) { return std::exp(x); }
static inline double tanh_exact(double y) { return std::tanh(y); }
static inline double softcap_exact(double x, double cap) {
  return info_nce_softcap(x, cap);
}

// Row loops, written once for both precisions; Exp and Cap are compile-time
// constants so they inline and the loops vectorise.
template <typename T, T (*Cap)(T, T)>
static inline void cap_row_impl(T* row, int64_t m, T cap) {
  for (int64_t j = 0; j < m; ++j) row[j] = Cap(row[j], cap);
}

template <typename T>
static inline T max_row_impl(const T* row, int64_t m) {
  T best = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : best)
  for (int64_t j = 0; j < m; ++j) best = row[j] > best ? row[j] : best;
  return best;
}

template <typename T, T (*Exp)(T)>
static inline T sum_exp_row_impl(const T* row, int64_t m, T shift) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) sum += Exp(row[j] - shift);
  return sum;
}

// row: logits -> weight * exp(l - lse) * dl/ds.
template <typename T, T (*Exp)(T)>
static inline void grad_row_impl(T* row, int64_t m, T lse, T weight, T cap) {
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
static inline T exp_and_grad_row_impl(T* row, int64_t m, T row_max, T cap) {
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
static inline void scale_row_impl(T* row, int64_t m, T factor) {
  for (int64_t j = 0; j < m; ++j) row[j] *= factor;
}

// float: cloned per instruction set. double: plain (tests, not speed).
[[maybe_unused]] CSL_CPU_CLONES static void cap_row(float* row, int64_t m,
                                                    float cap) {
  cap_row_impl<float, softcap_approx>(row, m, cap);
}
[[maybe_unused]] CSL_CPU_CLONES static float max_row(const float* row,
                                                     int64_t m) {
  return max_row_impl(row, m);
}
[[maybe_unused]] CSL_CPU_CLONES static float sum_exp_row(const float* row,
                                                         int64_t m,
                                                         float shift) {
  return sum_exp_row_impl<float, exp_approx>(row, m, shift);
}
[[maybe_unused]] CSL_CPU_CLONES static void grad_row(float* row, int64_t m,
                                                     float lse, float weight,
                                                     float cap) {
  grad_row_impl<float, exp_approx>(row, m, lse, weight, cap);
}
[[maybe_unused]] CSL_CPU_CLONES static float exp_and_grad_row(float* row,
                                                              int64_t m,
                                                              float row_max,
                                                              float cap) {
  return exp_and_grad_row_impl<float, exp_approx>(row, m, row_max, cap);
}
[[maybe_unused]] CSL_CPU_CLONES static void scale_row(float* row, int64_t m,
                                                      float factor) {
  scale_row_impl(row, m, factor);
}

[[maybe_unused]] static void cap_row(double* row, int64_t m, double cap) {
  cap_row_impl<double, softcap_exact>(row, m, cap);
}
[[maybe_unused]] static double max_row(const double* row, int64_t m) {
  return max_row_impl(row, m);
}
[[maybe_unused]] static double sum_exp_row(const double* row, int64_t m,
                                           double shift) {
  return sum_exp_row_impl<double, exp_exact>(row, m, shift);
}
[[maybe_unused]] static void grad_row(double* row, int64_t m, double lse,
                                      double weight, double cap) {
  grad_row_impl<double, exp_exact>(row, m, lse, weight, cap);
}
[[maybe_unused]] static double exp_and_grad_row(double* row, int64_t m,
                                                double row_max, double cap) {
  return exp_and_grad_row_impl<double, exp_exact>(row, m, row_max, cap);
}
[[maybe_unused]] static void scale_row(double* row, int64_t m, double factor) {
  scale_row_impl(row, m, factor);
}

// AMDIM's epilogue on raw scores s, with logits l = c * tanh(s / c) and a
// shift >= max l: returns sum_j exp(l_j - shift) and, with `grad`, writes
// exp(l_j - shift) * dl/ds = e_j * (1 - tanh^2) into grad (two exps per score;
// the logits are never stored, so the scores stay for the regulariser).
template <typename T, T (*Exp)(T), T (*Tanh)(T)>
static inline T softcap_sum_exp_row_impl(const T* row, int64_t m, T cap,
                                         T shift) {
  const T inv_cap = T(1) / cap;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j)
    sum += Exp(cap * Tanh(row[j] * inv_cap) - shift);
  return sum;
}
template <typename T, T (*Exp)(T), T (*Tanh)(T)>
static inline T softcap_exp_grad_row_impl(const T* row, T* grad, int64_t m,
                                          T cap, T shift) {
  const T inv_cap = T(1) / cap;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) {
    const T t = Tanh(row[j] * inv_cap);
    const T e = Exp(cap * t - shift);
    sum += e;
    grad[j] = e * (T(1) - t * t);
  }
  return sum;
}
// row[j] = weight * grad[j] + reg * row[j]: the negatives' dL/ds.
template <typename T>
static inline void combine_row_impl(T* row, const T* grad, int64_t m, T weight,
                                    T reg) {
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) row[j] = weight * grad[j] + reg * row[j];
}
[[maybe_unused]] CSL_CPU_CLONES static float softcap_sum_exp_row(
    const float* row, int64_t m, float cap, float shift) {
  return softcap_sum_exp_row_impl<float, exp_approx, tanh_approx>(row, m, cap,
                                                                  shift);
}
[[maybe_unused]] CSL_CPU_CLONES static float softcap_exp_grad_row(
    const float* row, float* grad, int64_t m, float cap, float shift) {
  return softcap_exp_grad_row_impl<float, exp_approx, tanh_approx>(row, grad, m,
                                                                   cap, shift);
}
[[maybe_unused]] CSL_CPU_CLONES static void combine_row(float* row,
                                                        const float* grad,
                                                        int64_t m, float weight,
                                                        float reg) {
  combine_row_impl(row, grad, m, weight, reg);
}
[[maybe_unused]] static double softcap_sum_exp_row(const double* row, int64_t m,
                                                   double cap, double shift) {
  return softcap_sum_exp_row_impl<double, exp_exact, tanh_exact>(row, m, cap,
                                                                 shift);
}
[[maybe_unused]] static double softcap_exp_grad_row(const double* row,
                                                    double* grad, int64_t m,
                                                    double cap, double shift) {
  return softcap_exp_grad_row_impl<double, exp_exact, tanh_exact>(row, grad, m,
                                                                  cap, shift);
}
[[maybe_unused]] static void combine_row(double* row, const double* grad,
                                         int64_t m, double weight, double reg) {
  combine_row_impl(row, grad, m, weight, reg);
}
// row[j] += alpha * x[j]
template <typename T>
static inline void axpy_row_impl(T* row, const T* x, int64_t m, T alpha) {
  for (int64_t j = 0; j < m; ++j) row[j] += alpha * x[j];
}

template <typename T>
static inline T square_sum_row_impl(const T* row, int64_t m) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) sum += row[j] * row[j];
  return sum;
}

[[maybe_unused]] CSL_CPU_CLONES static void axpy_row(float* row, const float* x,
                                                     int64_t m, float alpha) {
  axpy_row_impl(row, x, m, alpha);
}
[[maybe_unused]] CSL_CPU_CLONES static float square_sum_row(const float* row,
                                                            int64_t m) {
  return square_sum_row_impl(row, m);
}
[[maybe_unused]] static void axpy_row(double* row, const double* x, int64_t m,
                                      double alpha) {
  axpy_row_impl(row, x, m, alpha);
}
[[maybe_unused]] static double square_sum_row(const double* row, int64_t m) {
  return square_sum_row_impl(row, m);
}

}  // namespace vector_rows
}  // namespace csl_ext
