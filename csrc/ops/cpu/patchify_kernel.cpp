// CPU kernels of patchify and its adjoint, and their registration.
//
// The forward is a copy, so it moves bytes: each patch row is p contiguous
// elements of one image row (a memcpy of p * itemsize bytes), for any dtype.
// One task is one (image, row of patches), which writes a contiguous
// nW * C * p * p block of the output in order, so threads never share a
// cache line and each thread first-touches the pages it writes.
// The adjoint gathers per (image, channel) plane, so no two threads write
// the same pixel and the summation order is fixed: deterministic.
//
// Tasks are handed out dynamically (an atomic counter), not split in equal
// halves up front: the op is bound by memory and page faults, and on a
// shared machine a statically split loop waits for its slowest (preempted)
// thread, which made 2 threads slower than 1.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "../patchify_entry.h"

namespace csl_ext {
namespace {

// Runs fn(begin, end) over [0, tasks) in chunks of `chunk` tasks that the
// threads take in turn; serially when the whole job is below one chunk of
// work (`task_cost` elements per task against at::internal::GRAIN_SIZE).
template <typename F>
void parallel_chunks(int64_t tasks, int64_t task_cost, const F& fn) {
  const int64_t chunk = std::max<int64_t>(
      1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, task_cost));
  const int64_t threads =
      std::min<int64_t>(at::get_num_threads(), (tasks + chunk - 1) / chunk);
  if (threads <= 1 || at::in_parallel_region()) {
    fn(0, tasks);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t begin = next.fetch_add(chunk); begin < tasks;
         begin = next.fetch_add(chunk)) {
      fn(begin, std::min(begin + chunk, tasks));
    }
  });
}

at::Tensor patchify_forward_kernel(const at::Tensor& images_in, int64_t patch,
                                   int64_t stride) {
  const PatchGeometry g = patchify_check_args(images_in, patch, stride);
  auto patches =
      at::empty({g.batch, g.grid_h, g.grid_w, g.channels, patch, patch},
                images_in.options());
  if (patches.numel() == 0) return patches;
  const auto images = images_in.contiguous();
  const int64_t item = images.element_size();
  const auto* src = static_cast<const char*>(images.const_data_ptr());
  auto* dst = static_cast<char*>(patches.mutable_data_ptr());
  const int64_t row_bytes = patch * item;
  const int64_t task_elements = g.grid_w * g.channels * patch * patch;
  parallel_chunks(
      g.batch * g.grid_h, task_elements, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
          const int64_t b = task / g.grid_h;
          const int64_t top = (task % g.grid_h) * g.stride;  // first image row
          char* out = dst + task * task_elements * item;
          for (int64_t j = 0; j < g.grid_w; ++j) {
            for (int64_t c = 0; c < g.channels; ++c) {
              const char* in =
                  src + (((b * g.channels + c) * g.height + top) * g.width +
                         j * g.stride) *
                            item;
              for (int64_t y = 0; y < patch; ++y) {
                std::memcpy(out, in, row_bytes);
                out += row_bytes;
                in += g.width * item;
              }
            }
          }
        }
      });
  return patches;
}

template <typename scalar_t>
void patchify_backward_kernel_impl(const scalar_t* grad, scalar_t* image,
                                   const PatchGeometry& g) {
  using acc_t = at::opmath_type<scalar_t>;  // float for half / bfloat16
  const int64_t plane = g.height * g.width;
  const int64_t p = g.patch;
  // Work per plane: every patch element of one channel is read once.
  const int64_t plane_cost = std::max(plane, g.grid_h * g.grid_w * p * p);
  parallel_chunks(
      g.batch * g.channels, plane_cost, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(plane);
        for (int64_t bc = begin; bc < end; ++bc) {
          const int64_t b = bc / g.channels;
          const int64_t c = bc % g.channels;
          std::fill(acc.begin(), acc.end(), acc_t(0));
          for (int64_t i = 0; i < g.grid_h; ++i) {
            for (int64_t j = 0; j < g.grid_w; ++j) {
              // patches[b, i, j, c]: a p x p block
              const scalar_t* block =
                  grad +
                  (((b * g.grid_h + i) * g.grid_w + j) * g.channels + c) * p *
                      p;
              for (int64_t y = 0; y < p; ++y) {
                acc_t* row =
                    acc.data() + (i * g.stride + y) * g.width + j * g.stride;
                for (int64_t x = 0; x < p; ++x)
                  row[x] += static_cast<acc_t>(block[y * p + x]);
              }
            }
          }
          scalar_t* out = image + bc * plane;
          for (int64_t k = 0; k < plane; ++k)
            out[k] = static_cast<scalar_t>(acc[k]);
        }
      });
}

at::Tensor patchify_backward_kernel(const at::Tensor& grad_in, int64_t height,
                                    int64_t width, int64_t patch,
                                    int64_t stride) {
  const PatchGeometry g =
      patchify_backward_check_args(grad_in, height, width, patch, stride);
  auto image =
      at::empty({g.batch, g.channels, height, width}, grad_in.options());
  if (image.numel() == 0) return image;
  const auto grad = grad_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
                                  "patchify_backward", [&] {
                                    patchify_backward_kernel_impl<scalar_t>(
                                        grad.const_data_ptr<scalar_t>(),
                                        image.mutable_data_ptr<scalar_t>(), g);
                                  });
  return image;
}

}  // namespace

TORCH_LIBRARY_IMPL(csl_ext, CPU, m) {
  m.impl("patchify", &patchify_forward_kernel);
  m.impl("patchify_backward", &patchify_backward_kernel);
}

}  // namespace csl_ext
