"""The paper's evaluation of a pretrained encoder beside a random-init one.

Falcon & Cho (2020) report the accuracy of an MLP (1024 hidden units) on the
frozen encoder's features; the random-init encoder (same method, kwargs and
seed, no training) shows what the pretraining adds. Image folders are
streamed (decoded per batch in DataLoader workers), never held in memory.
"""

import torch
from torch import nn

from csl_ext.data import DEFAULT_SIZE, load_eval_splits
from csl_ext.eval import default_val_split, evaluate_encoder
from csl_ext.methods import build_method

__all__ = ["evaluate_pretrained"]


def evaluate_pretrained(method: nn.Module, config, method_kwargs: dict, protocols=("mlp",), device=None) -> dict:
    """Evaluates `method`'s frozen encoder (``method.embed``) and a random-init twin.

    Args:
        method: the trained Method.
        config: its TrainConfig (dataset, data_root, image_size, seed, method,
            num_workers and skip_bad_images for folders).
        method_kwargs: the kwargs the method was built with.
        protocols: csl_ext.eval protocols, e.g. ("mlp",) or ("mlp", "linear", "knn").
        device: evaluation device (None: csl_ext.eval's default).

    Returns:
        {"pretrained": {protocol: accuracy}, "random_init": {...}}.

    Raises:
        ValueError: a folder whose val classes differ from train's (and load_dataset's errors).
    """
    size = config.image_size or DEFAULT_SIZE[config.dataset]
    train_set, test_set = load_eval_splits(
        config.dataset, config.data_root, size, skip_bad_images=config.skip_bad_images, num_workers=config.num_workers
    )
    torch.manual_seed(config.seed)  # the initial weights the pretraining started from
    random_init = build_method(config.method, **method_kwargs).to(next(method.parameters()).device)
    out = {}
    for name, m in (("pretrained", method), ("random_init", random_init)):
        m.eval()
        out[name] = evaluate_encoder(
            m,
            train_set,
            test_set,
            protocols=tuple(protocols),
            device=device,
            val_split=default_val_split(config.dataset),
        )  # CIFAR-10: 45k / 5k
    return out
