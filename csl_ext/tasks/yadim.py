"""YADIM (Falcon & Cho 2020, §3.3): AMDIM's encoder, the union of the AMDIM
and CPC augmentation pipelines, and NCE between the last feature maps only.

- [0]: Falcon & Cho 2020, "A Framework for Contrastive Self-Supervised
  Learning and Designing a New Approach", https://arxiv.org/abs/2009.00104

The paper's finding is that AMDIM's multiscale comparisons matter little
once the encoder is strong: comparing the last maps, (-1:-1), with a plain
dot product and no extra parameters does as well.
"""

import torch

from csl_ext.tasks.amdim import FeatureMapContrastiveTask

__all__ = ["YADIMTask"]


class YADIMTask(FeatureMapContrastiveTask):
    """FeatureMapContrastiveTask with the comparison (-1:-1): amdim_nce of the
    last (1x1) map of one view against the last map of the other, both ways.
    No parameters of its own."""

    def __init__(self, tclip: float = 10.0, reg_coef: float = 0.05, generator: torch.Generator | None = None):
        super().__init__("last", tclip, reg_coef, bidirectional=True, generator=generator, num_maps=None)
