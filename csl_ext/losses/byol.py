"""BYOL's normalised regression loss (part 5 of the framework).

- [0]: BYOL, Grill et al. 2020, Eq. 2, https://arxiv.org/abs/2006.07733
"""

import torch
import torch.nn.functional as F

from csl_ext.ops._checks import check_finite, check_same, check_tensor


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``2 - 2 cos(p_i, z_i)``; z receives no gradient.

    Args:
        p: (N, D) online predictions q_theta(z_theta).
        z: (N, D) target projections z'_xi of the other view (detached here).

    Returns:
        The scalar loss in [0, 4] (0 for an empty batch).

    Example:
        >>> loss = byol_loss(p1, z2) + byol_loss(p2, z1)   # symmetrised, Eq. 2
    """
    check_tensor("p", p, dim=2)
    check_tensor("z", z, dim=2)
    check_same(("p", "z"), p, z)
    if p.shape != z.shape:
        raise ValueError(f"p and z must have the same shape (N, D), got {tuple(p.shape)} and {tuple(z.shape)}")
    check_finite("p", p)
    check_finite("z", z)
    if p.shape[0] == 0:
        return p.sum() * 0.0
    cos = (F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(1)  # N
    return (2 - 2 * cos).mean()
