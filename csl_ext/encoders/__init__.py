"""Encoders (part 2 of the framework): each maps images to representations.

``ENCODERS`` names every encoder (torchvision's ResNets / ResNeXts /
Wide-ResNets, AMDIM's, CPC v2's patch ResNet) behind one interface; see
csl_ext.encoders.registry.
"""
from csl_ext.encoders.amdim import AMDIM_PRESETS, AMDIMConfig, AMDIMEncoder, amdim_encoder
from csl_ext.encoders.cpc_resnet import CPCResNet, PatchEncoder, layer_norm2d
from csl_ext.encoders.registry import (ENCODERS, TABLE1_ENCODERS, build_encoder, build_map_encoder,
                                       build_patch_encoder)
from csl_ext.encoders.resnet import ARCHS, ResNetEncoder

__all__ = [
    "AMDIMEncoder",
    "AMDIMConfig",
    "AMDIM_PRESETS",
    "amdim_encoder",
    "CPCResNet",
    "PatchEncoder",
    "layer_norm2d",
    "ARCHS",
    "ResNetEncoder",
    "ENCODERS",
    "TABLE1_ENCODERS",
    "build_encoder",
    "build_map_encoder",
    "build_patch_encoder",
]
