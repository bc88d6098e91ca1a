"""Evaluate a pretrained (or random-init) encoder: the paper's MLP protocol,
a linear probe and weighted kNN on the dataset's labelled splits.

    python -m csl_ext.eval --checkpoint runs/simclr/checkpoint.pt [--random-init]
"""
import argparse
import json

import torch

from csl_ext.data import SPLITS, load_dataset
from csl_ext.eval.classifier import linear_probe, mlp_protocol
from csl_ext.eval.features import extract_features
from csl_ext.eval.knn import weighted_knn

PROTOCOLS = ("mlp", "linear", "knn")


def evaluate(method, dataset: str = "digits", data_root=None, image_size=None, protocols=("mlp",), epochs: int = 100,
             seed: int = 0) -> dict:
    """Accuracies of method's frozen features: {protocol: accuracy}.

    Trains on the dataset's labelled training split (digits / CIFAR-10 /
    STL-10 train, folder train) and tests on its test split.
    """
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        raise ValueError(f"protocols must be among {PROTOCOLS}, got {bad}")
    if dataset not in SPLITS:
        raise ValueError(f"dataset must be one of {tuple(SPLITS)}, got {dataset!r}")
    _, train_split, test_split = SPLITS[dataset]
    train = load_dataset(dataset, train_split, data_root, image_size=image_size)
    test = load_dataset(dataset, test_split, data_root, image_size=image_size)
    train_x, train_y = extract_features(method, train)
    test_x, test_y = extract_features(method, test)
    out = {}
    for p in protocols:
        if p == "mlp":
            out[p] = mlp_protocol(train_x, train_y, test_x, test_y, epochs=epochs, seed=seed)
        elif p == "linear":
            out[p] = linear_probe(train_x, train_y, test_x, test_y, epochs=epochs, seed=seed)
        else:
            out[p] = weighted_knn(train_x, train_y, test_x, test_y)
    return out


def method_from_checkpoint(path: str, random_init: bool = False):
    """Rebuilds the method of a trainer checkpoint (its weights unless
    random_init: then the same architecture, freshly initialised)."""
    from csl_ext.train.checkpoint import load_checkpoint
    from csl_ext.train.trainer import TrainConfig, make_method

    ckpt = load_checkpoint(path)
    cfg = TrainConfig(**ckpt["config"])
    torch.manual_seed(cfg.seed + 1)
    method = make_method(cfg, ckpt["num_classes"], ckpt["image_size"])
    if not random_init:
        method.load_state_dict(ckpt["method"])
    return method, cfg


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by csl-train")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--random-init", action="store_true", help="evaluate the same architecture, untrained")
    parser.add_argument("--epochs", type=int, default=100, help="classifier epochs")
    parser.add_argument("--data-root", default=None, help="override the checkpoint's data root")
    args = parser.parse_args(argv)
    method, cfg = method_from_checkpoint(args.checkpoint, args.random_init)
    result = evaluate(method, cfg.dataset, args.data_root or cfg.data_root, cfg.image_size, args.protocols, args.epochs)
    print(json.dumps({"checkpoint": args.checkpoint, "random_init": args.random_init, **result}))
    return result


if __name__ == "__main__":
    main()
