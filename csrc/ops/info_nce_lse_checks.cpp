#include "info_nce_lse_checks.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace csl_ext {

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
  TORCH_CHECK(
      mask >= 0 && mask <= 2,
      "info_nce_lse: mask must be 0 (none), 1 (diag) or 2 (block), got ", mask);
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

}  // namespace csl_ext
