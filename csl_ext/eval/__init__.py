"""Evaluation of frozen encoders: the paper's MLP protocol, a linear probe,
weighted kNN (the online probe lives in csl_ext.methods.base)."""
from csl_ext.eval.classifier import linear_probe, mlp_protocol, train_classifier
from csl_ext.eval.evaluate import evaluate, method_from_checkpoint
from csl_ext.eval.features import extract_features
from csl_ext.eval.knn import weighted_knn

__all__ = ["evaluate", "extract_features", "linear_probe", "method_from_checkpoint", "mlp_protocol", "train_classifier", "weighted_knn"]
