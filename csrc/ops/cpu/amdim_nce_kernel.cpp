// CPU epilogue of the fused AMDIM NCE op and its registration.
//
// Per row of raw scores s (one anchor against every location of every
// image): the sum of s^2; the capped logits; the log-sum-exp over the other
// images' locations; the softplus terms of the own image's locations; and,
// for the gradient, dL/ds in place: the softmax of the negatives weighted by
// sum_k sigmoid(lse - l_k), the positives' -sigmoid(lse - l_k), both times
// the cap's derivative, plus the regulariser's 2 w s. Row loops are the
// vectorised ones of vector_rows.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../amdim_nce_tiled.h"
#include "vector_rows.h"

namespace csl_ext {
namespace {

using namespace vector_rows;  // NOLINT: the row loops of vector_rows.h

template <typename T>
void amdim_rows(at::Tensor& tile, at::Tensor& loss_rows,
                at::Tensor& square_rows, const AmdimNceParams& params,
                int64_t row0, bool grad) {
  const int64_t m = tile.size(1);
  const int64_t bs = params.block_size;
  T* data = tile.data_ptr<T>();
  T* loss_data = loss_rows.data_ptr<T>();
  T* square_data = square_rows.data_ptr<T>();
  const T cap = static_cast<T>(params.tclip);
  const T loss_weight = static_cast<T>(params.loss_weight);
  const T reg_weight = static_cast<T>(params.reg_weight);
  const T neg_inf = -std::numeric_limits<T>::infinity();
  at::parallel_for(0, tile.size(0), 4, [&](int64_t begin, int64_t end) {
    std::vector<T> raw(grad ? m : 0);  // the scores, for the regulariser
    std::vector<T> positives(bs);      // capped logits of the own image
    for (int64_t r = begin; r < end; ++r) {
      T* row = data + r * m;
      T* own = row + (row0 + r) * bs;  // the own image's bs locations
      square_data[r] = square_sum_row(row, m);
      if (grad) std::copy(row, row + m, raw.begin());
      cap_row(row, m, cap);
      std::copy(own, own + bs, positives.begin());
      std::fill(own, own + bs, neg_inf);  // out of the negatives' lse
      const T row_max = max_row(row, m);
      const T lse = row_max == neg_inf  // a single image: no negatives
                        ? neg_inf
                        : row_max + std::log(sum_exp_row(row, m, row_max));
      T loss = 0, sigmoid_sum = 0;
      for (int64_t k = 0; k < bs; ++k) {
        if (lse == neg_inf) break;  // softplus(-inf) = 0, sigmoid(-inf) = 0
        loss += amdim_softplus(lse - positives[k]);
        sigmoid_sum += amdim_sigmoid(lse - positives[k]);
      }
      loss_data[r] = loss;
      if (!grad) continue;
      if (lse == neg_inf) {
        std::fill(row, row + m, T(0));
      } else {  // d loss / d lse = sum_k sigmoid(lse - l_k), times the softmax
        grad_row(row, m, lse, loss_weight * sigmoid_sum, cap);
      }
      axpy_row(row, raw.data(), m, T(2) * reg_weight);
      const T* own_raw = raw.data() + (own - row);
      for (int64_t k = 0; k < bs; ++k) {
        own[k] = amdim_positive_grad(own_raw[k], positives[k], lse, cap,
                                     loss_weight, reg_weight);
      }
    }
  });
}

void amdim_nce_rows_cpu(at::Tensor& tile, at::Tensor& loss_rows,
                        at::Tensor& square_rows, const AmdimNceParams& params,
                        int64_t row0, bool grad) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "amdim_nce_rows", [&] {
    amdim_rows<scalar_t>(tile, loss_rows, square_rows, params, row0, grad);
  });
}

const AmdimNceEpilogue kCpuEpilogue{&amdim_nce_rows_cpu,
                                    /*tile_elements=*/int64_t{1} << 20,
                                    /*parallel_row_blocks=*/true};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> amdim_nce_cpu(
    const at::Tensor& anchors, const at::Tensor& candidates,
    int64_t block_size, double scale, double tclip, double loss_weight,
    double reg_weight, bool compute_grad) {
  return amdim_nce_tiled(anchors, candidates, block_size, scale, tclip,
                         loss_weight, reg_weight, compute_grad, kCpuEpilogue);
}

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CPU, m) { m.impl("amdim_nce", &amdim_nce_cpu); }

}  // namespace csl_ext
