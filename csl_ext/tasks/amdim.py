"""AMDIM's representation-extraction task: NCE between feature maps of two
views at the scales a comparison spec names.

- [0]: AMDIM, Bachman et al. 2019, §3.3 (multiscale mutual information),
  https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, §3.2, https://arxiv.org/abs/2009.00104
"""

from collections.abc import Sequence

import torch
from torch import nn

from csl_ext.losses.amdim_nce import amdim_nce
from csl_ext.tasks.comparisons import Comparison, parse_comparisons

__all__ = ["FeatureMapContrastiveTask", "source_vectors"]


def source_vectors(feature_map: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One anchor vector per image from a (B, D, H, W) map: the map itself
    when it is 1x1, else the vector at a location drawn uniformly at random
    for each image (AMDIM's local source for e.g. the 5x5 -> 5x5 task).

    Returns:
        (B, D).
    """
    b, d, h, w = feature_map.shape
    if h * w == 1:
        return feature_map.reshape(b, d)
    index = torch.randint(h * w, (b,), generator=generator, device="cpu").to(feature_map.device)
    return feature_map.flatten(2)[torch.arange(b, device=feature_map.device), :, index]  # B x D


class FeatureMapContrastiveTask(nn.Module):
    """Sum over the comparisons (j:k) of amdim_nce(anchor from map j of one
    view, map k of the other view), averaged over both directions.

    No parameters: the similarity is the (1/sqrt(D)-scaled) dot product
    of amdim_nce, so every map must have the same D (AMDIM's encoder embeds
    every returned map into n_rkhs channels).

    Args:
        comparisons: a spec or preset of `csl_ext.tasks.COMPARISONS`, e.g.
            "amdim" = "(-1:-2)+(-1:-3)+(-2:-2)", "last" = "(-1:-1)",
            "last_random" = "(-1:U)", "same_level".
        tclip, reg_coef: of amdim_nce (AMDIM: 10 and 0.05).
        bidirectional: also contrast view 2's anchors with view 1's maps.
        generator: optional, for the random source locations and targets.
        num_maps: maps the encoder returns (AMDIMEncoder: 3), to reject a
            spec such as "(-1:-4)" at construction; None checks at forward.

    Shape:
        forward(maps1, maps2, gather=False): two lists of (B, D, H_l, W_l)
        maps (e.g. from AMDIMEncoder) -> (loss, reg), scalars; minimise
        loss + reg. With gather=True every comparison contrasts against the
        target maps of every torch.distributed process (amdim_nce's gather).

    Example:
        >>> task = FeatureMapContrastiveTask("amdim")
        >>> maps = [torch.randn(4, 8, s, s) for s in (7, 5, 1)]
        >>> loss, reg = task(maps, [m + 0.1 for m in maps])
    """

    def __init__(
        self,
        comparisons: str = "amdim",
        tclip: float = 10.0,
        reg_coef: float = 0.05,
        bidirectional: bool = True,
        generator: torch.Generator | None = None,
        num_maps: int | None = 3,
    ):
        super().__init__()
        parse_comparisons(comparisons, num_maps or 1 << 30)  # a bad spec fails here, not mid-training
        self.comparisons = comparisons
        self.tclip = tclip
        self.reg_coef = reg_coef
        self.bidirectional = bidirectional
        self.generator = generator

    def forward(
        self, maps1: Sequence[torch.Tensor], maps2: Sequence[torch.Tensor], *, gather: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if len(maps1) != len(maps2) or not maps1:
            raise ValueError(
                f"maps1 and maps2 must be non-empty lists of the same length, got {len(maps1)} and {len(maps2)}"
            )
        for name, maps in (("maps1", maps1), ("maps2", maps2)):
            for i, (a, b) in enumerate(zip(maps, maps1)):
                if not isinstance(a, torch.Tensor) or a.dim() != 4 or a.shape[:2] != b.shape[:2]:
                    raise ValueError(
                        f"{name}[{i}] must be a (B, D, H, W) map with the B and D of maps1[0], "
                        f"got {getattr(a, 'shape', a)}"
                    )
        comparisons = parse_comparisons(self.comparisons, len(maps1))
        directions = [(maps1, maps2), (maps2, maps1)] if self.bidirectional else [(maps1, maps2)]
        loss = reg = 0.0
        for comparison in comparisons:
            target = self._target(comparison, len(maps1))
            for source_maps, target_maps in directions:
                anchor = source_vectors(source_maps[comparison.source], self.generator)
                term, term_reg = amdim_nce(anchor, target_maps[target], self.tclip, self.reg_coef, gather=gather)
                loss = loss + term / len(directions)
                reg = reg + term_reg / len(directions)
        return loss, reg

    def _target(self, comparison: Comparison, num_maps: int) -> int:
        if comparison.target is not None:
            return comparison.target
        return -1 - int(torch.randint(num_maps, (), generator=self.generator))  # k ~ U{-num_maps .. -1}
