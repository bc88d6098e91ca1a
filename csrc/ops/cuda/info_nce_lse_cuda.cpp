// CUDA registration of the fused InfoNCE op: the tiled driver bound to the
// kernels of info_nce_lse_kernel.cu. Compiled only in CUDA builds.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../info_nce_lse_registration.h"
#include "info_nce_lse_launch.h"

namespace csl_ext {
namespace {

void info_nce_logits_and_lse_cuda(at::Tensor& tile, at::Tensor& lse,
                                  const InfoNceParams& params, int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(
      tile.scalar_type(), "info_nce_logits_and_lse", [&] {
        C10_CUDA_CHECK(launch_info_nce_logits_and_lse<scalar_t>(
            tile.data_ptr<scalar_t>(),
            lse.defined() ? lse.data_ptr<scalar_t>() : nullptr, tile.size(0),
            tile.size(1), params, row0, c10::cuda::getCurrentCUDAStream()));
      });
}

void info_nce_score_grad_cuda(at::Tensor& tile, const at::Tensor& lse,
                              const at::Tensor& row_scale,
                              const InfoNceParams& params, int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "info_nce_score_grad", [&] {
    C10_CUDA_CHECK(launch_info_nce_score_grad<scalar_t>(
        tile.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(),
        row_scale.data_ptr<scalar_t>(), tile.size(0), tile.size(1), params,
        row0, c10::cuda::getCurrentCUDAStream()));
  });
}

void info_nce_logits_lse_and_grad_cuda(at::Tensor& tile, at::Tensor& lse,
                                       const at::Tensor& row_scale,
                                       const InfoNceParams& params,
                                       int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "info_nce_lse_and_grad", [&] {
    C10_CUDA_CHECK(launch_info_nce_lse_and_score_grad<scalar_t>(
        tile.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(),
        row_scale.data_ptr<scalar_t>(), tile.size(0), tile.size(1), params,
        row0, c10::cuda::getCurrentCUDAStream()));
  });
}

// Larger tiles than on CPU: enough rows to fill the GPU's GEMMs.
const InfoNceEpilogue kCudaEpilogue{&info_nce_logits_and_lse_cuda,
                                    &info_nce_score_grad_cuda,
                                    &info_nce_logits_lse_and_grad_cuda,
                                    /*tile_elements=*/int64_t{1} << 24,
                                    /*parallel_row_blocks=*/false,
                                    /*low_precision_gemm=*/true};

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CUDA, m) {
  InfoNceRegistration<&kCudaEpilogue>::register_impls(m);
}

}  // namespace csl_ext
