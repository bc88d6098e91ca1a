"""Compiled ops of csl_ext with their pure-PyTorch references."""
from csl_ext.ops import amdim_nce as _amdim_nce  # noqa: F401  (registers the fused AMDIM op)
from csl_ext.ops.info_nce_lse import info_nce_lse
from csl_ext.ops.masked_conv2d import masked_conv2d, masked_conv2d_reference, vertical_mask
from csl_ext.ops.patchify import patch_grid, patchify, patchify_reference, unpatchify
from csl_ext.ops.reference import info_nce_lse_reference, info_nce_logits_reference

__all__ = ["info_nce_lse", "info_nce_lse_reference", "info_nce_logits_reference", "patchify", "patchify_reference",
           "patch_grid", "unpatchify", "masked_conv2d", "masked_conv2d_reference", "vertical_mask"]
