// CUDA registration of the fused AMDIM NCE op: the tile loop bound to the
// kernel of amdim_nce_kernel.cu. Compiled only in CUDA builds.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../amdim_nce_registration.h"
#include "amdim_nce_launch.h"

namespace csl_ext {
namespace {

void amdim_nce_rows_cuda(at::Tensor& tile, at::Tensor& loss_rows,
                         at::Tensor& square_rows, const AmdimNceParams& params,
                         int64_t row0) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "amdim_nce_rows", [&] {
    C10_CUDA_CHECK(launch_amdim_nce_rows<scalar_t>(
        tile.data_ptr<scalar_t>(), loss_rows.data_ptr<scalar_t>(),
        square_rows.data_ptr<scalar_t>(), tile.size(0), tile.size(1), params,
        row0, c10::cuda::getCurrentCUDAStream()));
  });
}

// Larger tiles than on CPU: enough rows to fill the GPU's GEMMs.
const AmdimNceEpilogue kCudaEpilogue{&amdim_nce_rows_cuda,
                                     /*tile_elements=*/int64_t{1} << 24,
                                     /*parallel_row_blocks=*/false,
                                     /*low_precision_gemm=*/true};

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CUDA, m) {
  AmdimNceRegistration<&kCudaEpilogue>::register_impls(m);
}

}  // namespace csl_ext
