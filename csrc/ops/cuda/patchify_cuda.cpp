// CUDA registration of patchify and its adjoint: checks, device guard,
// empty-input early return, contiguous inputs, launch on the current stream.
// Compiled only in CUDA builds; the kernels are in patchify_kernel.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../patchify_entry.h"
#include "patchify_launch.h"

namespace csl_ext {
namespace {

at::Tensor patchify_forward_cuda(const at::Tensor& images_in, int64_t patch,
                                 int64_t stride) {
  const PatchGeometry g = patchify_check_args(images_in, patch, stride);
  TORCH_CHECK(images_in.element_size() <= 8 && !images_in.is_complex(),
              "patchify: unsupported dtype ", images_in.scalar_type());
  const c10::cuda::CUDAGuard guard(images_in.device());
  auto patches =
      at::empty({g.batch, g.grid_h, g.grid_w, g.channels, patch, patch},
                images_in.options());
  if (patches.numel() == 0) return patches;
  const auto images = images_in.contiguous();
  C10_CUDA_CHECK(launch_patchify_forward(
      images.const_data_ptr(), patches.mutable_data_ptr(),
      images.element_size(), g, c10::cuda::getCurrentCUDAStream()));
  return patches;
}

PatchDtype patch_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return PatchDtype::kFloat;
    case at::kDouble:
      return PatchDtype::kDouble;
    case at::kHalf:
      return PatchDtype::kHalf;
    case at::kBFloat16:
      return PatchDtype::kBFloat16;
    default:
      TORCH_CHECK(false,
                  "patchify_backward: grad_patches must be float16, "
                  "bfloat16, float32 or float64, got ",
                  type);
  }
}

at::Tensor patchify_backward_cuda(const at::Tensor& grad_in, int64_t height,
                                  int64_t width, int64_t patch,
                                  int64_t stride) {
  const PatchGeometry g =
      patchify_backward_check_args(grad_in, height, width, patch, stride);
  const PatchDtype dtype = patch_dtype(grad_in.scalar_type());
  const c10::cuda::CUDAGuard guard(grad_in.device());
  auto image =
      at::empty({g.batch, g.channels, height, width}, grad_in.options());
  if (image.numel() == 0) return image;
  const auto grad = grad_in.contiguous();
  C10_CUDA_CHECK(launch_patchify_backward(grad.const_data_ptr(),
                                          image.mutable_data_ptr(), dtype, g,
                                          c10::cuda::getCurrentCUDAStream()));
  return image;
}

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CUDA, m) {
  m.impl("patchify", &patchify_forward_cuda);
  m.impl("patchify_backward", &patchify_backward_cuda);
}

}  // namespace csl_ext
