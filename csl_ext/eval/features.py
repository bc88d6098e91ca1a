"""Frozen features of an encoder over a labelled dataset."""
import torch
import torch.nn.functional as F

from csl_ext.augment.config import method_config


@torch.no_grad()
def extract_features(method, data, image_size: int | None = None, batch_size: int = 256, device=None):
    """Runs method.embed (eval mode, no augmentation) over every image.

    Inputs are normalised with the mean / std of the method's augmentation
    (csl_ext.augment), as during pretraining.

    Args:
        method: a csl_ext.methods.Method.
        data: a dataset with get_batch / labels (csl_ext.data).
        image_size: resize to this side (default the dataset's).

    Returns:
        features (N, feature_dim) float32 on the CPU, labels (N,) int64.
    """
    device = device or next(method.parameters()).device
    size = image_size or data.image_size
    cfg = method_config(method.augmentation, size)
    mean = torch.tensor(cfg.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(1, 3, 1, 1)
    was_training = method.training
    method.eval()
    feats, labels = [], []
    for i in range(0, len(data), batch_size):
        x, y = data.get_batch(range(i, min(i + batch_size, len(data))))
        x = x.to(device).float() / 255
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        feats.append(method.embed((x - mean) / std).float().flatten(1).cpu())
        labels.append(y)
    method.train(was_training)
    return torch.cat(feats), torch.cat(labels)
