// Geometry of the patchify op, shared by the CPU and CUDA kernels.
//
// images (B, C, H, W) -> patches (B, nH, nW, C, p, p) with
// patches[b, i, j, c, y, x] = images[b, c, i*s + y, j*s + x] and
// nH = (H - p) / s + 1 (the positions of torch.unfold: a remainder is dropped).
// Plain C++ (no torch header) so that the .cu file includes it too.
#pragma once

#include <cstdint>

#ifndef CSL_HOST_DEVICE
#if defined(__CUDACC__)
#define CSL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define CSL_HOST_DEVICE inline
#endif
#endif

namespace csl_ext {

struct PatchGeometry {
  int64_t batch = 0, channels = 0, height = 0, width = 0;
  int64_t patch = 1, stride = 1;
  int64_t grid_h = 0, grid_w = 0;  // nH, nW

  CSL_HOST_DEVICE int64_t patches_numel() const {
    return batch * grid_h * grid_w * channels * patch * patch;
  }
  CSL_HOST_DEVICE int64_t images_numel() const {
    return batch * channels * height * width;
  }
};

// Number of windows of length `patch` at step `stride` along `size`
// (0 when the patch does not fit).
CSL_HOST_DEVICE int64_t patchify_grid(int64_t size, int64_t patch,
                                      int64_t stride) {
  return size < patch ? 0 : (size - patch) / stride + 1;
}

// The windows k with k*s <= pos <= k*s + p - 1, clipped to [0, grid): the
// patches a pixel at `pos` appears in. Empty when first > last.
CSL_HOST_DEVICE void patchify_covering(int64_t pos, int64_t patch,
                                       int64_t stride, int64_t grid,
                                       int64_t* first, int64_t* last) {
  const int64_t lowest =
      pos - patch + 1;  // ceil(lowest / s), lowest may be < 0
  *first = lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
  const int64_t highest = pos / stride;
  *last = highest < grid - 1 ? highest : grid - 1;
}

}  // namespace csl_ext
