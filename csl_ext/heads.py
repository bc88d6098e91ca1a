"""Projection and prediction MLPs (part 4 of the framework: similarity through a
projection head followed by cosine).

- [0]: SimCLR, Chen et al. 2020, Sec. 2.1 (2-layer MLP head), https://arxiv.org/abs/2002.05709
- [1]: MoCo v2, Chen et al. 2020 (MLP head), https://arxiv.org/abs/2003.04297
- [2]: BYOL, Grill et al. 2020, Sec. 3.3 (projector and predictor), https://arxiv.org/abs/2006.07733
- [3]: google-research/simclr, model_util.py ``projection_head`` / ``linear_layer``
"""

import torch
from torch import nn


def _check_dims(**dims: int) -> None:
    for name, value in dims.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class ScaleOnlyBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d with a learnt scale but no shift (``center=False`` in
    TensorFlow's batch norm, as [3]'s output layer): (N, C) -> (N, C).

    The shift is kept as a frozen zero ``bias`` (``requires_grad=False``) so
    that the module's parameters and checkpoints are those of nn.BatchNorm1d
    and batch-norm converters (global BN, split BN) handle it unchanged.
    """

    def __init__(self, num_features: int, **kwargs):
        super().__init__(num_features, affine=True, **kwargs)
        self.bias.requires_grad_(False)

    def reset_parameters(self) -> None:
        super().reset_parameters()  # weight 1, bias 0


class ProjectionHead(nn.Module):
    """Linear -> [BatchNorm] -> ReLU -> Linear [-> BatchNorm]: (N, in_dim) -> (N, out_dim).

    MoCo v2 uses it without batch norm [1]; BYOL's projector and predictor
    have batch norm in the hidden layer only [2]; SimCLR's code [3] normalises
    both layers and gives the output layer neither bias nor BN shift (see
    `SimCLRProjectionHead`).

    Args:
        in_dim: encoder feature size, e.g. 512 for ResNet-18.
        hidden_dim: hidden width, e.g. 2048 (MoCo v2), 4096 (BYOL).
        out_dim: projection size, e.g. 128 (SimCLR, MoCo), 256 (BYOL).
        batch_norm: BatchNorm1d after the hidden linear layer (which then has
            no bias: BN's shift replaces it).
        output_batch_norm: a scale-only BatchNorm1d after the output layer
            (which then has no bias), as [3].
    """

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = True, output_batch_norm: bool = False
    ):
        super().__init__()
        _check_dims(in_dim=in_dim, hidden_dim=hidden_dim, out_dim=out_dim)
        layers = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim, bias=not output_batch_norm)]
        if output_batch_norm:
            layers.append(ScaleOnlyBatchNorm1d(out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_dim) -> (N, out_dim)."""
        return self.net(x)


class SimCLRProjectionHead(ProjectionHead):
    """SimCLR's head as its authors' code builds it [3] (``proj_head_mode =
    nonlinear``, two layers as in [0]): Linear(F, F, no bias) -> BN -> ReLU ->
    Linear(F, out_dim, no bias) -> BN (scale, no shift).

    The hidden width is the encoder's feature size F (``mid_dim =
    hiddens.shape[-1]`` in [3]); the paper's text [0] says only "a MLP with one
    hidden layer". Shapes: (N, in_dim) -> (N, out_dim).

    Args:
        in_dim: encoder feature size F.
        out_dim: projection size (128 in [0]).
        hidden_dim: None (default): F, as [3]; an int overrides it.
    """

    def __init__(self, in_dim: int, out_dim: int = 128, hidden_dim: int | None = None):
        super().__init__(
            in_dim, in_dim if hidden_dim is None else hidden_dim, out_dim, batch_norm=True, output_batch_norm=True
        )


class PredictionHead(ProjectionHead):
    """BYOL's predictor q_theta: the same MLP shape, (N, dim) -> (N, dim) [2]."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__(dim, hidden_dim, dim, batch_norm=True)
