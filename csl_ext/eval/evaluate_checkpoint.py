"""Evaluate a saved csl_ext checkpoint with the paper's protocol (and friends).

    python -m csl_ext.eval.evaluate_checkpoint runs/simclr/last.pt
    python -m csl_ext.eval.evaluate_checkpoint last.pt --protocols mlp knn --random-init
    python -m csl_ext.eval.evaluate_checkpoint last.pt --data-root ~/data/cifar10
    python -m csl_ext.eval.evaluate_checkpoint runs/yadim/checkpoint.pt --data-root ~/imagenet --num-workers 8

The checkpoint is the trainer's ``torch.save(dict(method=..., method_kwargs=...,
model=<Method state_dict>, dataset=..., data_root=..., image_size=..., epoch=...,
step=...), path)``. The method is rebuilt with ``build_method(method,
**method_kwargs)``, its frozen `embed` features are evaluated on the
dataset's labelled train split and its test split (csl_ext.data.SPLITS).
``--random-init`` also evaluates a freshly initialised (seeded) method of the
same architecture: the baseline that shows what pre-training added.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""

import argparse
import sys

import torch

from csl_ext._cli_errors import run_cli
from csl_ext.eval.evaluate import PROTOCOLS, check_protocols, evaluate_encoder
from csl_ext.eval.probe import default_val_split

REQUIRED_KEYS = ("method", "method_kwargs", "model", "dataset")


def load_checkpoint(path: str) -> dict:
    """Loads a csl_ext checkpoint on the CPU, safely (tensors and plain data
    only: csl_ext.train.checkpoint.load_checkpoint).

    Raises:
        FileNotFoundError: `path` does not exist.
        CheckpointError (a ValueError): the file is not a dict with the keys in
            REQUIRED_KEYS, is corrupt, or carries pickled code.
    """
    from csl_ext.train.checkpoint import load_checkpoint as load_safely

    return load_safely(path, map_location="cpu", require_keys=REQUIRED_KEYS)


def build_from_checkpoint(ckpt: dict, *, random_init: bool = False, seed: int = 0):
    """The Method of `ckpt`: with its trained weights, or freshly initialised
    from `seed` (same method kwargs) when `random_init`."""
    from csl_ext.methods import build_method

    kwargs = dict(ckpt.get("method_kwargs") or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        method = build_method(ckpt["method"], **kwargs)
    if not random_init:
        method.load_state_dict(_strip_wrappers(ckpt["model"]))
    return method.eval()


def _strip_wrappers(state: dict) -> dict:
    """Removes the key prefixes DDP ("module.") and torch.compile ("_orig_mod.")
    add, so a state dict saved from a wrapped model still loads."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: v for key, v in state.items()}
    return state


def load_eval_splits(ckpt: dict, data_root: str | None = None, *, num_workers: int = 4, skip_bad_images: bool = False):
    """(train, test) labelled splits of the checkpoint's dataset at its image size;
    image folders (train/ and val/, same classes) are streamed by `num_workers`
    decoding workers."""
    from csl_ext.data import SPLITS
    from csl_ext.data import load_eval_splits as load_splits

    name = ckpt["dataset"]
    if name not in SPLITS:
        raise ValueError(f"checkpoint dataset must be one of {sorted(SPLITS)}, got {name!r}")
    root = data_root if data_root is not None else ckpt.get("data_root")
    return load_splits(name, root, ckpt.get("image_size"), num_workers=num_workers, skip_bad_images=skip_bad_images)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m csl_ext.eval.evaluate_checkpoint",
        description="Evaluate a csl_ext checkpoint's frozen features.",
    )
    p.add_argument("checkpoint", help="path of a checkpoint written by the csl_ext trainer")
    # no argparse `choices`: an unknown protocol raises the library's ValueError
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), help=f"any of {PROTOCOLS}")
    p.add_argument("--data-root", default=None, help="dataset directory (default: the checkpoint's)")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="also evaluate a freshly initialised encoder of the same architecture",
    )
    p.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=256, help="images per encoder forward pass")
    p.add_argument("--num-workers", type=int, default=4, help="image folders: decoding worker processes")
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="image folders: skip unreadable files with a warning (default: stop, naming the file)",
    )
    p.add_argument("--epochs", type=int, default=50, help="probe training epochs")
    p.add_argument("--k", type=int, default=20, help="kNN neighbours")
    p.add_argument("--seed", type=int, default=0, help="seed of the probes and of --random-init")
    return p.parse_args(argv)


def main(argv=None) -> dict[str, dict[str, float]]:
    """Command-line entry; prints a table and returns {"trained": {...}[, "random_init": {...}]}.
    Run as ``python -m``, the errors below print one line and exit with status 2.

    Raises:
        FileNotFoundError: missing checkpoint.
        ValueError: not a csl_ext checkpoint, unknown protocol, bad dataset.
    """
    args = parse_args(argv)
    protocols = check_protocols(args.protocols)  # fail before the (slow) loading
    ckpt = load_checkpoint(args.checkpoint)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train_set, test_set = load_eval_splits(
        ckpt, args.data_root, num_workers=args.num_workers, skip_bad_images=args.skip_bad_images
    )
    kw = dict(
        protocols=protocols,
        device=device,
        batch_size=args.batch_size,
        k=args.k,
        seed=args.seed,
        probe_kwargs=dict(epochs=args.epochs),
        val_split=default_val_split(ckpt["dataset"]),
    )

    variants = [("trained", False)] + ([("random_init", True)] if args.random_init else [])
    results = {}
    for label, random_init in variants:
        method = build_from_checkpoint(ckpt, random_init=random_init, seed=args.seed).to(device)
        results[label] = evaluate_encoder(method, train_set, test_set, **kw)

    print(
        f"checkpoint {args.checkpoint}: method {ckpt['method']}, epoch {ckpt.get('epoch', '?')}, "
        f"step {ckpt.get('step', '?')}, dataset {ckpt['dataset']} "
        f"({len(train_set)} train / {len(test_set)} test images)"
    )
    print("protocol  " + "  ".join(f"{label:>11}" for label in results))
    for protocol in protocols:
        print(f"{protocol:<8}  " + "  ".join(f"{results[label][protocol]:>11.4f}" for label in results))
    sys.stdout.flush()
    return results


if __name__ == "__main__":
    # user errors (missing file, not a checkpoint, unknown protocol): one line, exit status 2
    run_cli("python -m csl_ext.eval.evaluate_checkpoint", main)
