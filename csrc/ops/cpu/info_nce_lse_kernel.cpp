// CPU epilogue of the fused InfoNCE op and its registration.
//
// The epilogue is a handful of in-place ATen ops on one (R x M) tile that
// fits in cache; ATen runs them with its vectorised (AVX2 / AVX-512), multi-
// threaded CPU kernels. The tile loop itself is sequential (the GEMMs already
// use every core), which keeps the accumulation order of dB fixed: results
// are bitwise deterministic for a given thread count.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <limits>

#include "../info_nce_lse_entry.h"

namespace csl_ext {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Sets the masked entries of a tile of rows row0 .. row0+R-1 to `value`.
void fill_masked(at::Tensor& tile, const InfoNceParams& params, int64_t row0,
                 double value) {
  const int64_t first = row0 + params.row_offset;  // global id of row 0
  if (params.mask == InfoNceMask::kDiag) {
    // Row r excludes column first + r: the tile's diagonal at that offset.
    if (first < tile.size(1)) tile.diagonal(first).fill_(value);
  } else if (params.mask == InfoNceMask::kBlock) {
    // Row r excludes block first + r: view (R, M / bs, bs) and take the
    // diagonal of the first two dims, e.g. 49 locations per image in AMDIM.
    const int64_t bs = params.block_size;
    auto blocks = tile.view({tile.size(0), tile.size(1) / bs, bs});
    if (first < blocks.size(1)) {
      blocks.diagonal(first, /*dim1=*/0, /*dim2=*/1).fill_(value);
    }
  }
}

void info_nce_logits_and_lse_cpu(at::Tensor& tile, at::Tensor& lse,
                                 const InfoNceParams& params, int64_t row0) {
  if (params.softcap > 0) {
    tile.div_(params.softcap).tanh_().mul_(params.softcap);
  }
  fill_masked(tile, params, row0, kNegInf);
  // logsumexp subtracts the row max and maps an all -inf row to -inf.
  if (lse.defined()) at::logsumexp_out(lse, tile, {1}, /*keepdim=*/false);
}

void info_nce_score_grad_cpu(at::Tensor& tile, const at::Tensor& lse,
                             const at::Tensor& row_scale,
                             const InfoNceParams& params, int64_t row0) {
  at::Tensor cap_grad;
  if (params.softcap > 0) {
    // 1 - tanh^2 from the capped logits, before they are overwritten.
    cap_grad = tile.div(params.softcap).square_().neg_().add_(1);
  }
  // A row whose candidates are all masked has lse = -inf and no gradient.
  const auto safe_lse = lse.masked_fill(lse.isneginf(), 0).unsqueeze(1);
  tile.sub_(safe_lse).exp_().mul_(row_scale.unsqueeze(1));
  if (cap_grad.defined()) tile.mul_(cap_grad);
  fill_masked(tile, params, row0, 0.0);  // 0 * -inf above gave NaN there
}

const InfoNceEpilogue kCpuEpilogue{&info_nce_logits_and_lse_cpu,
                                   &info_nce_score_grad_cpu,
                                   /*tile_elements=*/int64_t{1} << 20};

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
