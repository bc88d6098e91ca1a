// masked_conv2d: the PixelCNN-style vertically masked convolution of CPC
// v2's context network, whose output row i sees only input rows <= i.
//
// Instead of multiplying the weight by a mask (and spending the FLOPs of the
// zeroed taps), the kernel rows below the centre are cropped and the input is
// padded by kh/2 * dilation rows on top only. Written with ATen ops, so one
// CompositeImplicitAutograd kernel serves every device and autograd flows
// through ATen's convolution (gradients for input, weight and bias).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <array>
#include <optional>

namespace csl_ext {
namespace {

at::Tensor masked_conv2d(const at::Tensor& input, const at::Tensor& weight,
                         const std::optional<at::Tensor>& bias,
                         int64_t dilation, int64_t groups) {
  TORCH_CHECK(input.dim() == 4,
              "masked_conv2d: input must be 4-D (B, C, H, W), got shape ",
              input.sizes());
  TORCH_CHECK(weight.dim() == 4,
              "masked_conv2d: weight must be 4-D (C_out, C_in / groups, kh, "
              "kw), got shape ",
              weight.sizes());
  const int64_t kh = weight.size(2);
  const int64_t kw = weight.size(3);
  TORCH_CHECK(kh % 2 == 1 && kw % 2 == 1,
              "masked_conv2d: the kernel size must be odd (a centre tap), got ",
              kh, "x", kw);
  TORCH_CHECK(dilation >= 1, "masked_conv2d: dilation must be >= 1, got ",
              dilation);
  TORCH_CHECK(groups >= 1, "masked_conv2d: groups must be >= 1, got ", groups);
  // e.g. 3x3: rows 0 and 1 (the centre) stay, 1 row of padding on top.
  const auto visible = weight.narrow(2, 0, kh / 2 + 1);
  const int64_t top = (kh / 2) * dilation;
  const auto padded = top > 0 ? at::constant_pad_nd(input, {0, 0, top, 0}) : input;
  const std::array<int64_t, 2> stride{1, 1};
  const std::array<int64_t, 2> padding{0, (kw / 2) * dilation};
  const std::array<int64_t, 2> dilations{dilation, dilation};
  return at::conv2d(padded, visible, bias, stride, padding, dilations, groups);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(csl_ext, m) {
  m.def(
      "masked_conv2d(Tensor input, Tensor weight, Tensor? bias, "
      "int dilation=1, int groups=1) -> Tensor");
}

TORCH_LIBRARY_IMPL(csl_ext, CompositeImplicitAutograd, m) {
  m.impl("masked_conv2d", &masked_conv2d);
}

}  // namespace csl_ext
