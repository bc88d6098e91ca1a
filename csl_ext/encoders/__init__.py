"""Encoders (part 2 of the framework): each maps images to representations.

``ENCODERS`` names every encoder (torchvision's ResNets / ResNeXts /
Wide-ResNets, AMDIM's, CPC v2's patch ResNet) behind one interface; see
csl_ext.encoders.registry.
"""

from csl_ext.encoders.amdim import (
    AMDIM_PRESETS,
    AMDIMConfig,
    AMDIMEncoder,
    amdim_encoder,
)
from csl_ext.encoders.cpc_resnet import CPCResNet, PatchEncoder, layer_norm2d
from csl_ext.encoders.registry import (
    ENCODERS,
    TABLE1_ENCODERS,
    build_encoder,
    build_map_encoder,
    build_patch_encoder,
)
from csl_ext.encoders.resnet import ARCHS, ResNetEncoder

__all__ = [
    "AMDIM_PRESETS",
    "ARCHS",
    "ENCODERS",
    "TABLE1_ENCODERS",
    "AMDIMConfig",
    "AMDIMEncoder",
    "CPCResNet",
    "PatchEncoder",
    "ResNetEncoder",
    "amdim_encoder",
    "build_encoder",
    "build_map_encoder",
    "build_patch_encoder",
    "layer_norm2d",
]
