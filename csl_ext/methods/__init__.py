"""Methods: the five parts of the framework composed and registered in METHODS.

    >>> from csl_ext.methods import METHODS, build_method
    >>> method = build_method("simclr", width=16, num_classes=10)
"""
from csl_ext.methods.base import Method, StepOutput
from csl_ext.methods.registry import METHODS, build_method, register
from csl_ext.methods import amdim, byol, cpc, moco, simclr, yadim  # noqa: F401,E402  (register)

__all__ = ["METHODS", "Method", "StepOutput", "build_method", "register"]
