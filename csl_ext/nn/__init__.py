"""Layers of csl_ext."""

from csl_ext.nn.global_batch_norm import GlobalBatchNorm, convert_to_global_bn
from csl_ext.nn.masked_conv import MaskedConv2d
from csl_ext.nn.split_batch_norm import SplitBatchNorm, convert_split_batchnorm

__all__ = ["GlobalBatchNorm", "MaskedConv2d", "SplitBatchNorm", "convert_split_batchnorm", "convert_to_global_bn"]
