"""Evaluation of frozen representations (Falcon & Cho 2020, Section 5).

The paper's protocol, taken from AMDIM and CPC: freeze the encoder, extract
features, train an MLP with one hidden layer of 1024 ReLU units on them and
report its test accuracy. A linear probe and a weighted kNN (InstDisc) are
given alongside as cheaper, hyper-parameter-light checks.

    >>> from csl_ext.data import load_dataset
    >>> from csl_ext.eval import evaluate_encoder
    >>> train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    >>> evaluate_encoder(method, train, test)            # doctest: +SKIP
    {'mlp': 0.93, 'linear': 0.91, 'knn': 0.90}

Command line: ``python -m csl_ext.eval.evaluate_checkpoint CKPT [--random-init]``.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
- [1]: AMDIM, Bachman et al. 2019, https://arxiv.org/abs/1906.00910
- [2]: CPC v2, Henaff et al. 2019, https://arxiv.org/abs/1905.09272
- [3]: InstDisc, Wu et al. 2018, https://arxiv.org/abs/1805.01978
"""

from csl_ext.eval.evaluate import PROTOCOLS, evaluate_encoder
from csl_ext.eval.features import extract_features, pool_features
from csl_ext.eval.knn import knn_accuracy, knn_predict
from csl_ext.eval.probe import ProbeResult, default_val_split, linear_probe, make_probe, mlp_probe

__all__ = [
    "PROTOCOLS",
    "ProbeResult",
    "default_val_split",
    "evaluate_encoder",
    "extract_features",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "make_probe",
    "mlp_probe",
    "pool_features",
]
