"""Projection and prediction MLPs (part 4 of the framework: similarity through a
projection head followed by cosine).

- [0]: SimCLR, Chen et al. 2020, Sec. 2.1 (2-layer MLP head), https://arxiv.org/abs/2002.05709
- [1]: MoCo v2, Chen et al. 2020 (MLP head), https://arxiv.org/abs/2003.04297
- [2]: BYOL, Grill et al. 2020, Sec. 3.3 (projector and predictor), https://arxiv.org/abs/2006.07733
"""
from torch import nn


def _check_dims(**dims: int) -> None:
    for name, value in dims.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class ProjectionHead(nn.Module):
    """Linear -> [BatchNorm] -> ReLU -> Linear: (N, in_dim) -> (N, out_dim).

    SimCLR and MoCo v2 use it without batch norm in the hidden layer (MoCo) or
    with it (SimCLR v1 code, BYOL); ``batch_norm`` picks.

    Args:
        in_dim: encoder feature size, e.g. 512 for ResNet-18.
        hidden_dim: hidden width, e.g. 2048 (SimCLR), 4096 (BYOL).
        out_dim: projection size, e.g. 128 (SimCLR, MoCo), 256 (BYOL).
        batch_norm: BatchNorm1d after the hidden linear layer.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = True):
        super().__init__()
        _check_dims(in_dim=in_dim, hidden_dim=hidden_dim, out_dim=out_dim)
        layers = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        """x: (N, in_dim) -> (N, out_dim)."""
        return self.net(x)


class PredictionHead(ProjectionHead):
    """BYOL's predictor q_theta: the same MLP shape, (N, dim) -> (N, dim) [2]."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__(dim, hidden_dim, dim, batch_norm=True)
