// Argument checks of the patchify ops, shared by the CPU and CUDA
// registrations: c10::Error messages that name the argument.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "patchify_math.h"

namespace csl_ext {

inline void patchify_check_window(int64_t height, int64_t width, int64_t patch,
                                  int64_t stride) {
  TORCH_CHECK(patch >= 1, "patchify: patch_size must be >= 1, got ", patch);
  TORCH_CHECK(stride >= 1, "patchify: stride must be >= 1, got ", stride);
  TORCH_CHECK(patch <= height && patch <= width,
              "patchify: patch_size must be <= the image's height and width, "
              "got patch_size=",
              patch, " for a ", height, "x", width, " image");
}

inline PatchGeometry patchify_check_args(const at::Tensor& images,
                                         int64_t patch, int64_t stride) {
  TORCH_CHECK(images.dim() == 4,
              "patchify: images must be 4-D (B, C, H, W), got shape ",
              images.sizes());
  PatchGeometry g;
  g.batch = images.size(0);
  g.channels = images.size(1);
  g.height = images.size(2);
  g.width = images.size(3);
  patchify_check_window(g.height, g.width, patch, stride);
  g.patch = patch;
  g.stride = stride;
  g.grid_h = patchify_grid(g.height, patch, stride);
  g.grid_w = patchify_grid(g.width, patch, stride);
  return g;
}

inline PatchGeometry patchify_backward_check_args(const at::Tensor& grad,
                                                  int64_t height, int64_t width,
                                                  int64_t patch,
                                                  int64_t stride) {
  TORCH_CHECK(grad.dim() == 6,
              "patchify_backward: grad_patches must be 6-D (B, nH, nW, C, p, "
              "p), got shape ",
              grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()),
              "patchify_backward: grad_patches must be floating, got ",
              grad.scalar_type());
  patchify_check_window(height, width, patch, stride);
  PatchGeometry g;
  g.batch = grad.size(0);
  g.channels = grad.size(3);
  g.height = height;
  g.width = width;
  g.patch = patch;
  g.stride = stride;
  g.grid_h = patchify_grid(height, patch, stride);
  g.grid_w = patchify_grid(width, patch, stride);
  TORCH_CHECK(grad.size(1) == g.grid_h && grad.size(2) == g.grid_w &&
                  grad.size(4) == patch && grad.size(5) == patch,
              "patchify_backward: grad_patches must have shape (B, ", g.grid_h,
              ", ", g.grid_w, ", C, ", patch, ", ", patch, ") for a ", height,
              "x", width, " image, got ", grad.sizes());
  return g;
}

}  // namespace csl_ext
