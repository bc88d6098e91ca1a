// CPU epilogue of the fused AMDIM NCE op and its registration.
//
// Per row of raw scores s (one anchor against every location of every
// image), with the own image's block [own, own + bs) apart:
//   1. sum of s^2 (all) and max of s (negatives): no transcendental;
//   2. the negatives' sum of exp(l - shift), shift = cap(max s) (the cap is
//      monotonic), and for the gradient e * dl/ds into a row buffer: two exps
//      per score, the logits never stored;
//   3. the own block's softplus terms (bs scores);
//   4. for the gradient, dL/ds in place: the buffer times
//      loss_weight * sum_k sigmoid(lse - l_k) / sum, plus the regulariser's
//      2 w s; the positives' -sigmoid(lse - l_k) dl/ds + 2 w s.
// Row loops are the vectorised ones of vector_rows.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../amdim_nce_registration.h"
#include "vector_rows.h"

namespace csl_ext {
namespace {

using namespace vector_rows;  // NOLINT: the row loops of vector_rows.h

template <typename T>
void amdim_rows(at::Tensor& tile, at::Tensor& loss_rows,
                at::Tensor& square_rows, const AmdimNceParams& params,
                int64_t row0) {
  const int64_t m = tile.size(1);
  const int64_t bs = params.block_size;
  const bool grad = params.compute_grad;
  T* data = tile.data_ptr<T>();
  T* loss_data = loss_rows.data_ptr<T>();
  T* square_data = square_rows.data_ptr<T>();
  const T cap = static_cast<T>(params.tclip);
  T loss_weight, reg_weight;
  amdim_weights(params, &loss_weight, &reg_weight);
  const T two_reg = T(2) * reg_weight;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  at::parallel_for(0, tile.size(0), 4, [&](int64_t begin, int64_t end) {
    std::vector<T> buffer(grad ? m : 0);  // e * dl/ds of the negatives
    std::vector<T> positives(bs);         // capped logits of the own image
    for (int64_t r = begin; r < end; ++r) {
      T* row = data + r * m;
      const int64_t own = (row0 + r + params.block_offset) * bs;
      const int64_t after = own + bs;  // negatives: [0, own) and [after, m)
      square_data[r] = square_sum_row(row, m);
      const T raw_max =
          std::max(max_row(row, own), max_row(row + after, m - after));
      T lse = neg_inf;  // a single image: no negatives, no loss
      T sum = 0;
      if (raw_max != neg_inf) {
        const T shift = info_nce_softcap(raw_max, cap);
        sum = grad
                  ? softcap_exp_grad_row(row, buffer.data(), own, cap, shift) +
                        softcap_exp_grad_row(row + after, buffer.data() + after,
                                             m - after, cap, shift)
                  : softcap_sum_exp_row(row, own, cap, shift) +
                        softcap_sum_exp_row(row + after, m - after, cap, shift);
        lse = shift + std::log(sum);
      }
      T loss = 0, sigmoid_sum = 0;
      for (int64_t k = 0; k < bs; ++k) {
        positives[k] = info_nce_softcap(row[own + k], cap);
        if (lse == neg_inf) continue;  // softplus(-inf) = 0, sigmoid(-inf) = 0
        loss += amdim_softplus(lse - positives[k]);
        sigmoid_sum += amdim_sigmoid(lse - positives[k]);
      }
      loss_data[r] = loss;
      if (!grad) continue;
      // d loss / d lse = sum_k sigmoid(lse - l_k), times the softmax e / sum.
      const T weight = lse == neg_inf ? T(0) : loss_weight * sigmoid_sum / sum;
      combine_row(row, buffer.data(), own, weight, two_reg);
      combine_row(row + after, buffer.data() + after, m - after, weight,
                  two_reg);
      for (int64_t k = 0; k < bs; ++k) {
        row[own + k] = amdim_positive_grad(row[own + k], positives[k], lse, cap,
                                           loss_weight, reg_weight);
      }
    }
  });
}

void amdim_nce_rows_cpu(at::Tensor& tile, at::Tensor& loss_rows,
                        at::Tensor& square_rows, const AmdimNceParams& params,
                        int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "amdim_nce_rows", [&] {
    amdim_rows<scalar_t>(tile, loss_rows, square_rows, params, row0);
  });
}

const AmdimNceEpilogue kCpuEpilogue{&amdim_nce_rows_cpu,
                                    /*tile_elements=*/int64_t{1} << 20,
                                    /*parallel_row_blocks=*/true,
                                    /*low_precision_gemm=*/false};

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CPU, m) {
  AmdimNceRegistration<&kCpuEpilogue>::register_impls(m);
}

}  // namespace csl_ext
