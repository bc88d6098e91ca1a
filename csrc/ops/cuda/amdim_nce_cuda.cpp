// CUDA registration of the fused AMDIM NCE op: the tile loop bound to the
// kernel of amdim_nce_kernel.cu. Compiled only in CUDA builds.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../amdim_nce_tiled.h"
#include "amdim_nce_launch.h"

namespace csl_ext {
namespace {

void amdim_nce_rows_cuda(at::Tensor& tile, at::Tensor& loss_rows,
                         at::Tensor& square_rows, const AmdimNceParams& params,
                         int64_t row0, bool grad) {
  AT_DISPATCH_FLOATING_TYPES(tile.scalar_type(), "amdim_nce_rows", [&] {
    C10_CUDA_CHECK(launch_amdim_nce_rows<scalar_t>(
        tile.data_ptr<scalar_t>(), loss_rows.data_ptr<scalar_t>(),
        square_rows.data_ptr<scalar_t>(), tile.size(0), tile.size(1), params,
        row0, grad, c10::cuda::getCurrentCUDAStream()));
  });
}

const AmdimNceEpilogue kCudaEpilogue{&amdim_nce_rows_cuda,
                                     /*tile_elements=*/int64_t{1} << 24,
                                     /*parallel_row_blocks=*/false};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> amdim_nce_cuda(
    const at::Tensor& anchors, const at::Tensor& candidates,
    int64_t block_size, double scale, double tclip, double loss_weight,
    double reg_weight, bool compute_grad) {
  const c10::cuda::CUDAGuard guard(anchors.device());
  return amdim_nce_tiled(anchors, candidates, block_size, scale, tclip,
                         loss_weight, reg_weight, compute_grad, kCudaEpilogue);
}

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CUDA, m) { m.impl("amdim_nce", &amdim_nce_cuda); }

}  // namespace csl_ext
