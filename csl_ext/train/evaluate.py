"""The paper's evaluation of a pretrained encoder beside a random-init one.

Falcon & Cho (2020) report the accuracy of an MLP (1024 hidden units) on the
frozen encoder's features; the random-init encoder (same method, kwargs and
seed, no training) shows what the pretraining adds. csl_ext.eval is written
separately: without it the evaluation is skipped with a message.
"""
import torch
from torch import nn

from csl_ext.data import DEFAULT_SIZE, SPLITS, load_dataset
from csl_ext.methods import build_method

__all__ = ["Embedder", "evaluate_pretrained"]


class Embedder(nn.Module):
    """The representation a Method evaluates (``method.embed``) as a module:
    ``(N, 3, H, W) -> (N, feature_dim)``."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.embed(x)


def evaluate_pretrained(method: nn.Module, config, method_kwargs: dict, protocols=("mlp",), device=None):
    """Evaluates `method`'s frozen encoder and a random-init twin.

    Args:
        method: the trained Method.
        config: its TrainConfig (dataset, data_root, image_size, seed, method).
        method_kwargs: the kwargs the method was built with.
        protocols: csl_ext.eval protocols, e.g. ("mlp",) or ("mlp", "linear", "knn").
        device: evaluation device (None: csl_ext.eval's default).

    Returns:
        {"pretrained": {protocol: accuracy}, "random_init": {...}}, or None
        when csl_ext.eval is not installed.
    """
    try:
        from csl_ext.eval import evaluate_encoder
    except ImportError as error:
        print(f"csl_ext.eval is not available ({error}): skipping the evaluation")
        return None
    size = config.image_size or DEFAULT_SIZE[config.dataset]
    _, train_split, test_split = SPLITS[config.dataset]
    train_set = load_dataset(config.dataset, train_split, root=config.data_root, image_size=size)
    test_set = load_dataset(config.dataset, test_split, root=config.data_root, image_size=size)
    torch.manual_seed(config.seed)  # the initial weights the pretraining started from
    random_init = build_method(config.method, **method_kwargs)
    out = {}
    for name, m in (("pretrained", method), ("random_init", random_init)):
        m.eval()
        out[name] = evaluate_encoder(Embedder(m), train_set, test_set, protocols=tuple(protocols), device=device)
    return out
