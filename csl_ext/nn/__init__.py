"""Layers of csl_ext."""
from csl_ext.nn.masked_conv import MaskedConv2d
from csl_ext.nn.split_batch_norm import SplitBatchNorm, convert_split_batchnorm

__all__ = ["MaskedConv2d", "SplitBatchNorm", "convert_split_batchnorm"]
