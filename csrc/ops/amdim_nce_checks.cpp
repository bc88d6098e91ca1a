#include "amdim_nce_checks.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace csl_ext {

AmdimNceParams amdim_nce_check_args(
    const at::Tensor& anchors, const at::Tensor& candidates,
    const c10::optional<at::Tensor>& weight_factors, int64_t block_size,
    int64_t block_offset, double scale, double tclip, double loss_weight,
    double reg_weight, bool compute_grad) {
  TORCH_CHECK(anchors.dim() == 2,
              "amdim_nce: anchors must be 2-D (N, D), got shape ",
              anchors.sizes());
  TORCH_CHECK(candidates.dim() == 2 || candidates.dim() == 3,
              "amdim_nce: candidates must be rows (M, D) or maps (K, D, L), "
              "got shape ",
              candidates.sizes());
  TORCH_CHECK(anchors.size(1) == candidates.size(1),
              "amdim_nce: anchors and candidates must share D, got ",
              anchors.sizes(), " and ", candidates.sizes());
  TORCH_CHECK(anchors.scalar_type() == candidates.scalar_type() &&
                  at::isFloatingType(anchors.scalar_type()),
              "amdim_nce: anchors and candidates must share a floating dtype, "
              "got ",
              anchors.scalar_type(), " and ", candidates.scalar_type());
  TORCH_CHECK(anchors.device() == candidates.device(),
              "amdim_nce: anchors and candidates must be on the same device, "
              "got ",
              anchors.device(), " and ", candidates.device());
  TORCH_CHECK(block_size >= 1, "amdim_nce: block_size must be >= 1, got ",
              block_size);
  const int64_t images = candidates.dim() == 3
                             ? candidates.size(0)
                             : candidates.size(0) / block_size;
  if (candidates.dim() == 3) {
    TORCH_CHECK(candidates.size(2) == block_size,
                "amdim_nce: maps (K, D, L) must have L = block_size, got L=",
                candidates.size(2), ", block_size=", block_size);
  } else {
    TORCH_CHECK(candidates.size(0) % block_size == 0,
                "amdim_nce: candidates must hold block_size rows per image "
                "(M = K * block_size), got M=",
                candidates.size(0), ", block_size=", block_size);
  }
  TORCH_CHECK(block_offset >= 0 && block_offset + anchors.size(0) <= images,
              "amdim_nce: anchor i's own image is block i + block_offset, so "
              "0 <= block_offset <= K - N is needed, got block_offset=",
              block_offset, ", N=", anchors.size(0), ", K=", images);
  if (weight_factors.has_value()) {
    TORCH_CHECK(weight_factors->dim() == 1 && weight_factors->size(0) == 2 &&
                    weight_factors->device() == anchors.device(),
                "amdim_nce: weight_factors must have shape (2,) on ",
                anchors.device(), ", got ", weight_factors->sizes(), " on ",
                weight_factors->device());
  }
  TORCH_CHECK(tclip > 0, "amdim_nce: tclip must be > 0, got ", tclip);
  AmdimNceParams params;
  params.block_size = block_size;
  params.block_offset = block_offset;
  params.scale = scale;
  params.tclip = tclip;
  params.loss_weight = loss_weight;
  params.reg_weight = reg_weight;
  params.compute_grad = compute_grad;
  return params;
}

}  // namespace csl_ext
