// CUDA kernels of patchify and its adjoint. The CPU twin is
// cpu/patchify_kernel.cpp; the index math is patchify_math.h.
//
// Forward: one thread per output element, so the writes are coalesced and
// the reads of a patch row are contiguous. Backward: one thread per image
// pixel that gathers from the (at most ceil(p/s)^2) patches covering it,
// in a fixed order: no atomics, deterministic.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "patchify_launch.h"

namespace csl_ext {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 64 ? blocks : 65535 * 64);
}

template <typename T>
__global__ void patchify_forward_cuda_kernel(const T* __restrict__ images,
                                             T* __restrict__ patches,
                                             PatchGeometry g, int64_t total) {
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       idx < total; idx += int64_t{blockDim.x} * gridDim.x) {
    int64_t rest = idx;
    const int64_t x = rest % g.patch;
    rest /= g.patch;
    const int64_t y = rest % g.patch;
    rest /= g.patch;
    const int64_t c = rest % g.channels;
    rest /= g.channels;
    const int64_t j = rest % g.grid_w;
    rest /= g.grid_w;
    const int64_t i = rest % g.grid_h;
    const int64_t b = rest / g.grid_h;
    patches[idx] =
        images[((b * g.channels + c) * g.height + i * g.stride + y) * g.width +
               j * g.stride + x];
  }
}

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename T>
__device__ typename Acc<T>::type load(const T* p) {
  return *p;
}
template <>
__device__ float load<__half>(const __half* p) {
  return __half2float(*p);
}
template <>
__device__ float load<__nv_bfloat16>(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}

template <typename T>
__device__ T store(typename Acc<T>::type v) {
  return v;
}
template <>
__device__ __half store<__half>(float v) {
  return __float2half(v);
}
template <>
__device__ __nv_bfloat16 store<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

template <typename T>
__global__ void patchify_backward_cuda_kernel(const T* __restrict__ grad,
                                              T* __restrict__ image,
                                              PatchGeometry g, int64_t total) {
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       idx < total; idx += int64_t{blockDim.x} * gridDim.x) {
    const int64_t px = idx % g.width;
    const int64_t py = (idx / g.width) % g.height;
    const int64_t bc = idx / (g.width * g.height);
    const int64_t c = bc % g.channels;
    const int64_t b = bc / g.channels;
    int64_t i0, i1, j0, j1;
    patchify_covering(py, g.patch, g.stride, g.grid_h, &i0, &i1);
    patchify_covering(px, g.patch, g.stride, g.grid_w, &j0, &j1);
    typename Acc<T>::type sum = 0;
    for (int64_t i = i0; i <= i1; ++i) {
      for (int64_t j = j0; j <= j1; ++j) {
        const int64_t block =
            ((b * g.grid_h + i) * g.grid_w + j) * g.channels + c;
        sum += load(grad + (block * g.patch + py - i * g.stride) * g.patch +
                    px - j * g.stride);
      }
    }
    image[idx] = store<T>(sum);
  }
}

template <typename T>
cudaError_t forward_as(const void* images, void* patches, PatchGeometry g,
                       cudaStream_t stream) {
  const int64_t total = g.patches_numel();
  if (total == 0) return cudaSuccess;
  patchify_forward_cuda_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(images), static_cast<T*>(patches), g, total);
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_as(const void* grad, void* image, PatchGeometry g,
                        cudaStream_t stream) {
  const int64_t total = g.images_numel();
  if (total == 0) return cudaSuccess;
  patchify_backward_cuda_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<const T*>(grad), static_cast<T*>(image), g, total);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_patchify_forward(const void* images, void* patches,
                                    int64_t item_size, PatchGeometry g,
                                    cudaStream_t stream) {
  switch (item_size) {
    case 1:
      return forward_as<uint8_t>(images, patches, g, stream);
    case 2:
      return forward_as<uint16_t>(images, patches, g, stream);
    case 4:
      return forward_as<uint32_t>(images, patches, g, stream);
    case 8:
      return forward_as<uint64_t>(images, patches, g, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_patchify_backward(const void* grad, void* image,
                                     PatchDtype dtype, PatchGeometry g,
                                     cudaStream_t stream) {
  switch (dtype) {
    case PatchDtype::kFloat:
      return backward_as<float>(grad, image, g, stream);
    case PatchDtype::kDouble:
      return backward_as<double>(grad, image, g, stream);
    case PatchDtype::kHalf:
      return backward_as<__half>(grad, image, g, stream);
    case PatchDtype::kBFloat16:
      return backward_as<__nv_bfloat16>(grad, image, g, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace csl_ext
