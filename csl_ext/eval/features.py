"""Features of a frozen encoder: the input of every evaluation protocol.

The encoder is run in eval mode without gradients (batch-norm running
statistics, no dropout), as in the linear / MLP evaluation of AMDIM [1] and
CPC [2] that Falcon & Cho [0] follow. Images are normalised like the
evaluation augmentation (``make_augmentation("eval", S)``) normalises them.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
- [1]: AMDIM, Bachman et al. 2019, https://arxiv.org/abs/1906.00910
- [2]: CPC v2, Henaff et al. 2019, https://arxiv.org/abs/1905.09272
"""

from collections.abc import Sequence

import torch
from torch import nn


def eval_normalisation(image_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the evaluation augmentation at `image_size` (CIFAR
    statistics up to 32 px, ImageNet's above)."""
    from csl_ext.augment.config import MIN_IMAGE_SIZE
    from csl_ext.augment.factory import make_augmentation

    # the config refuses sides < 16 (CPC patches); their statistics are the 32 px ones anyway
    cfg = make_augmentation("eval", max(int(image_size), MIN_IMAGE_SIZE), backend="torchvision").config
    return cfg.mean, cfg.std


def pool_features(out) -> torch.Tensor:
    """An encoder's output as (N, F) features.

    Args:
        out: (N, F) features; (N, C, H, W) map (global-average pooled to
            (N, C)); or a list / tuple of such (AMDIM-style multi-scale maps:
            the last, deepest one is used, as AMDIM's evaluation does).

    Returns:
        (N, F) tensor.

    Raises:
        ValueError: an empty list or an output of another rank.
    """
    if isinstance(out, (list, tuple)):
        if len(out) == 0:
            raise ValueError("encoder output is an empty list of feature maps")
        out = out[-1]
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"encoder output must be a tensor or a list of tensors, got {type(out).__name__}")
    if out.ndim == 4:
        return out.mean(dim=(2, 3))  # N x C x H x W -> N x C
    if out.ndim == 2:
        return out
    if out.ndim > 2:
        return out.flatten(1)  # e.g. N x C x 1 (already pooled along one axis)
    raise ValueError(f"encoder output must have shape (N, F) or (N, C, H, W), got {tuple(out.shape)}")


def _stream(dataset, n: int, batch_size: int):
    """uint8 image batches of `dataset` in order, each decoded by one of
    ``dataset.num_workers`` DataLoader workers (at most 2 batches per worker in flight)."""
    order = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=order, num_workers=dataset.num_workers, collate_fn=_as_images, prefetch_factor=2
    )
    return iter(loader)


def _as_images(batch):
    return batch[0]  # get_batch returns (images, labels); keep the images


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    images,
    *,
    batch_size: int = 256,
    device=None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Runs a frozen encoder over uint8 images.

    Args:
        encoder: an nn.Module mapping (B, 3, H, W) float images to (B, F)
            features, (B, C, h, w) maps or a list of maps (see
            `pool_features`); a csl_ext `Method` is evaluated through its
            `embed`. Its training flag is restored afterwards.
        images: uint8 (N, 3, H, W) tensor, or a dataset with `get_batch`
            and `len` (e.g. csl_ext.data.ImageArray, fetched at its image_size).
            A dataset with ``num_workers`` > 0 (csl_ext.data.ImageFolder) is
            streamed: its batches are decoded in that many DataLoader workers
            and only a few batches of images are in memory at any time.
        batch_size: images per forward pass (>= 1).
        device: where the encoder runs; default the device of its first
            parameter (CPU for a parameter-free module). The encoder is not
            moved: pass a device it already lives on.
        mean, std: per-channel normalisation in [0, 1] pixel units; default
            the evaluation augmentation's at the images' side.

    Returns:
        float32 (N, F) features on the CPU.

    Raises:
        ValueError: non-uint8 or wrongly shaped images, batch_size < 1, bad mean/std.

    Example:
        >>> feats = extract_features(method, load_dataset("digits", "test"))
        >>> feats.shape  # (360, method.feature_dim)
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        n = images.shape[0]
        side = images.shape[-1]
        fetch = lambda i, j: images[i:j]  # noqa: E731
    elif hasattr(images, "get_batch"):
        n = len(images)
        side = getattr(images, "image_size", None) or images.get_batch([0])[0].shape[-1]
        fetch = lambda i, j: images.get_batch(range(i, j))[0]  # noqa: E731
        if getattr(images, "num_workers", 0) > 0:  # files: decode batches in parallel workers
            batches = _stream(images, n, batch_size)
            fetch = lambda i, j: next(batches)  # noqa: E731
    else:
        raise ValueError(f"images must be a uint8 tensor (N, 3, H, W) or an ImageArray, got {type(images).__name__}")
    if mean is None or std is None:
        default_mean, default_std = eval_normalisation(side)
        mean = default_mean if mean is None else mean
        std = default_std if std is None else std
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError(f"mean and std must have 3 values with std > 0, got mean={mean!r}, std={std!r}")
    if device is None:
        param = next(iter(encoder.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)

    # x / 255 then (x - mean) / std folded into one affine map: x * scale + shift
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    scale = 1.0 / (255.0 * std_t)
    shift = -torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1) / std_t

    from csl_ext.methods.base import Method  # a Method's forward is its training step, not its features

    forward = encoder.embed if isinstance(encoder, Method) else encoder
    was_training = encoder.training
    encoder.eval()
    try:
        chunks = []
        for i in range(0, n, batch_size):
            x = fetch(i, min(i + batch_size, n)).to(device, non_blocking=True)
            x = x.float().mul_(scale).add_(shift)  # B x 3 x H x W
            chunks.append(pool_features(forward(x)).float().cpu())
    finally:
        encoder.train(was_training)
    if not chunks:
        raise ValueError("images must hold at least one image, got 0")
    return torch.cat(chunks)
