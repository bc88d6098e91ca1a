"""Compiled ops of csl_ext with their pure-PyTorch references.

One module per op: its wrapper, its torch.library registrations (shapes for
torch.compile, autograd) and its reference.
"""

from csl_ext.ops.amdim_nce import amdim_nce_reference, amdim_nce_terms
from csl_ext.ops.info_nce_lse import (
    info_nce_logits_reference,
    info_nce_lse,
    info_nce_lse_reference,
)
from csl_ext.ops.masked_conv2d import (
    masked_conv2d,
    masked_conv2d_reference,
    vertical_mask,
)
from csl_ext.ops.patchify import patch_grid, patchify, patchify_reference, unpatchify

__all__ = [
    "amdim_nce_reference",
    "amdim_nce_terms",
    "info_nce_logits_reference",
    "info_nce_lse",
    "info_nce_lse_reference",
    "masked_conv2d",
    "masked_conv2d_reference",
    "patch_grid",
    "patchify",
    "patchify_reference",
    "unpatchify",
    "vertical_mask",
]
