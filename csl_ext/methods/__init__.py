"""Methods: the five parts of the framework composed and registered in METHODS.

>>> from csl_ext.methods import METHODS, build_method, compose
>>> method = build_method("simclr", width=16, num_classes=10)
>>> method = build_method("amdim", encoder="resnet18", encoder_kwargs={"width": 0.125})
>>> method = compose(augmentation="yadim", encoder="amdim", extraction="last", similarity="scaled_dot",
...                  loss="amdim_nce")   # == METHODS["composed"](...)
"""

from csl_ext.methods import amdim, byol, cpc, moco, simclr, yadim  # noqa: F401  (register)
from csl_ext.methods.base import Method, StepOutput
from csl_ext.methods.compose import ComposedMethod, compose
from csl_ext.methods.registry import METHODS, build_method, register

__all__ = ["METHODS", "ComposedMethod", "Method", "StepOutput", "build_method", "compose", "register"]
