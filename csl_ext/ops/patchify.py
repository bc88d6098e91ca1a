"""Patchify: CPC v2's grid of overlapping patches as one op, `patchify`.

- [0]: CPC v2, Hénaff et al. 2020, §4.1 (a 7x7 grid of 64x64 patches with
  stride 32 from 256x256 images), https://arxiv.org/abs/1905.09272
"""

import torch
import torch.nn.functional as F

from csl_ext._extension import has_extension, warn_fallback
from csl_ext.ops._checks import check_tensor

__all__ = ["patchify", "patchify_reference", "patchify_adjoint_reference", "patch_grid", "unpatchify"]


def patch_grid(size: int, patch_size: int, stride: int) -> int:
    """Patches along one side: ``(size - patch_size) // stride + 1``, e.g. 7 for
    256/64/32, 32/8/4 and 64/16/8."""
    return (size - patch_size) // stride + 1


def patchify(images: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """Cuts every image into a grid of (possibly overlapping) square patches.

    ``patches[b, i, j, c, y, x] = images[b, c, i * stride + y, j * stride + x]``:
    the same as ``images.unfold(2, p, s).unfold(3, p, s).permute(0, 2, 3, 1,
    4, 5).contiguous()`` in one pass (a copy per patch row, no
    intermediate). Rows and columns past the last full patch are dropped.
    Differentiable: the backward sums each patch's gradient back into the
    image where patches overlap.

    Args:
        images: (B, C, H, W), a floating dtype or uint8 (any memory layout).
        patch_size: p >= 1, at most H and W.
        stride: s >= 1, e.g. p // 2 for CPC's half-overlapping patches.

    Returns:
        patches: (B, nH, nW, C, p, p) contiguous, nH = (H - p) // s + 1.

    Raises:
        TypeError, ValueError: naming the argument, for a wrong shape or
            dtype, or a patch larger than the image.

    Example:
        >>> patchify(torch.rand(2, 3, 256, 256), 64, 32).shape
        torch.Size([2, 7, 7, 3, 64, 64])
    """
    _validate(images, patch_size, stride)
    if not has_extension():
        warn_fallback("patchify")
        return patchify_reference(images, patch_size, stride)
    return torch.ops.csl_ext.patchify(images, patch_size, stride)


def unpatchify(patches: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
    """Reassembles (B, nH, nW, C, p, p) patches into (B, C, height, width)
    images, averaging where patches overlap (pixels no patch covers are 0).

    The inverse of `patchify` for unchanged patches; after a per-patch
    augmentation, each pixel is the mean of its patches' versions. Uses the
    adjoint op (patchify's backward) divided by each pixel's patch count.
    """
    check_tensor("patches", patches, dim=6)
    p = patches.shape[-1]
    ones = torch.ones(1, 1, height, width, dtype=patches.dtype, device=patches.device)
    if has_extension():
        summed = torch.ops.csl_ext.patchify_backward(patches, height, width, p, stride)
        count = torch.ops.csl_ext.patchify_backward(patchify(ones, p, stride), height, width, p, stride)
    else:
        summed = patchify_adjoint_reference(patches, height, width, stride)
        count = patchify_adjoint_reference(patchify_reference(ones, p, stride), height, width, stride)
    return summed / count.clamp(min=1)


def patchify_reference(images: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """Pure PyTorch: two unfolds, a permute and a copy."""
    return images.unfold(2, patch_size, stride).unfold(3, patch_size, stride).permute(0, 2, 3, 1, 4, 5).contiguous()


def patchify_adjoint_reference(patches: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
    """Pure PyTorch adjoint of `patchify`: ``F.fold`` sums each (B, nH, nW, C, p, p)
    patch back into a (B, C, height, width) image. Differentiable, and it runs
    under ``torch.no_grad()`` (no autograd of the forward involved)."""
    b, n_h, n_w, c, p = patches.shape[:5]
    columns = patches.permute(0, 3, 4, 5, 1, 2).reshape(b, c * p * p, n_h * n_w)  # F.unfold's layout
    return F.fold(columns, (height, width), p, stride=stride)


def _validate(images, patch_size, stride) -> None:
    check_tensor("images", images, dim=4, floating=False)
    if not (images.is_floating_point() or images.dtype == torch.uint8):
        raise ValueError(f"images must have a floating dtype or uint8, got {images.dtype}")
    for name, value in (("patch_size", patch_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    height, width = images.shape[2:]
    if patch_size > height or patch_size > width:
        raise ValueError(
            f"patch_size must be <= the image's height and width, got patch_size={patch_size} "
            f"for images of shape {tuple(images.shape)}"
        )


# ----------------------------------------------------------------------------
# torch.library registration: shapes for torch.compile, autograd. patchify
# is linear, so its backward is its adjoint and the adjoint's backward is
# patchify again: gradients of any order.
# ----------------------------------------------------------------------------


def _register() -> None:
    lib = "csl_ext::"

    @torch.library.register_fake(lib + "patchify")
    def _(images, patch_size, stride):
        b, c, h, w = images.shape
        grid = (patch_grid(h, patch_size, stride), patch_grid(w, patch_size, stride))
        return images.new_empty((b, *grid, c, patch_size, patch_size))

    @torch.library.register_fake(lib + "patchify_backward")
    def _(grad_patches, height, width, patch_size, stride):
        b, c = grad_patches.shape[0], grad_patches.shape[3]
        return grad_patches.new_empty((b, c, height, width))

    def _setup(ctx, inputs, output):
        images, patch_size, stride = inputs
        ctx.geometry = (images.shape[2], images.shape[3], patch_size, stride)

    def _backward(ctx, grad):
        return torch.ops.csl_ext.patchify_backward(grad, *ctx.geometry), None, None

    torch.library.register_autograd(lib + "patchify", _backward, setup_context=_setup)

    def _setup_adjoint(ctx, inputs, output):
        ctx.window = inputs[3:]

    def _backward_adjoint(ctx, grad):
        return torch.ops.csl_ext.patchify(grad, *ctx.window), None, None, None, None

    torch.library.register_autograd(lib + "patchify_backward", _backward_adjoint, setup_context=_setup_adjoint)


if has_extension():
    _register()
