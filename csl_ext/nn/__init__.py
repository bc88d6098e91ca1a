"""Layers of csl_ext."""
from csl_ext.nn.masked_conv import MaskedConv2d

__all__ = ["MaskedConv2d"]
