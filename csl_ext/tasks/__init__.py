"""Representation extraction (part 3 of the framework): which parts of the
encoders' outputs are contrasted, and the task heads that go with them."""

from csl_ext.tasks.amdim import FeatureMapContrastiveTask, source_vectors
from csl_ext.tasks.comparisons import COMPARISONS, Comparison, parse_comparisons
from csl_ext.tasks.cpc import ContextNetwork, CPCTask
from csl_ext.tasks.yadim import YADIMTask

__all__ = [
    "COMPARISONS",
    "Comparison",
    "parse_comparisons",
    "FeatureMapContrastiveTask",
    "source_vectors",
    "ContextNetwork",
    "CPCTask",
    "YADIMTask",
]
