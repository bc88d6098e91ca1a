// Launchers of the patchify CUDA kernels. Plain pointers and a stream only:
// the .cu file includes no torch header, which keeps its compile short.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../patchify_math.h"

namespace csl_ext {

// The floating dtypes of the adjoint, mapped from at::ScalarType by the host.
enum class PatchDtype : int { kFloat, kDouble, kHalf, kBFloat16 };

// patches[b, i, j, c, y, x] = images[b, c, i*s + y, j*s + x] for elements of
// `item_size` bytes (1, 2, 4 or 8): the forward is a copy of any dtype.
cudaError_t launch_patchify_forward(const void* images, void* patches,
                                    int64_t item_size, PatchGeometry g,
                                    cudaStream_t stream);

// image[b, c, Y, X] = sum of the patch elements that Y, X appear in.
cudaError_t launch_patchify_backward(const void* grad_patches, void* image,
                                     PatchDtype dtype, PatchGeometry g,
                                     cudaStream_t stream);

}  // namespace csl_ext
