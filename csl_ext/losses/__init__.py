"""Contrastive losses over the fused ops (csl_ext.ops)."""

from csl_ext.losses.amdim_nce import AmdimNCELoss, amdim_nce
from csl_ext.losses.cpc_infonce import CPCInfoNCELoss, cpc_infonce
from csl_ext.losses.info_nce import InfoNCELoss, info_nce
from csl_ext.losses.nt_xent import NTXentLoss, nt_xent

__all__ = [
    "nt_xent",
    "NTXentLoss",
    "info_nce",
    "InfoNCELoss",
    "amdim_nce",
    "AmdimNCELoss",
    "cpc_infonce",
    "CPCInfoNCELoss",
]
