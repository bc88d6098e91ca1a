"""Encoders (part 2 of the framework): each maps images to representations."""
from csl_ext.encoders.amdim import AMDIM_PRESETS, AMDIMConfig, AMDIMEncoder, amdim_encoder
from csl_ext.encoders.cpc_resnet import CPCResNet, PatchEncoder, layer_norm2d

__all__ = [
    "AMDIMEncoder",
    "AMDIMConfig",
    "AMDIM_PRESETS",
    "amdim_encoder",
    "CPCResNet",
    "PatchEncoder",
    "layer_norm2d",
]
