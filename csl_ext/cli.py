"""``csl-train``: pretrain a method, then evaluate it beside a random-init encoder.

Examples:
    csl-train --method simclr --dataset digits --epochs 2 --batch-size 128 \\
        --output-dir runs/simclr --method-kwargs '{"width": 16}'
    csl-train ... --resume              # continue from runs/simclr/checkpoint.pt
    torchrun --nproc_per_node=2 -m csl_ext.cli --method simclr ...   # DDP
    csl-train --method simclr --dataset folder --data-root DIR --image-size 128   # DIR/train/<class>/*.jpg
"""

import argparse
import dataclasses
import json
import sys

from csl_ext._cli_errors import run_cli
from csl_ext.data.digits import AUGMENT_OVERRIDES as DIGITS_AUGMENT
from csl_ext.methods.registry import check_method_kwargs
from csl_ext.train import TrainConfig, Trainer

__all__ = ["main", "build_parser"]


def build_parser(**defaults) -> argparse.ArgumentParser:
    """The csl-train argument parser; `defaults` override argument defaults
    (dest names, e.g. method="byol", epochs=5). Every TrainConfig field has
    an option of the same name (``--image-size`` -> image_size)."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="csl-train", description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--method", default=d.method, help="simclr, moco_v2, byol, amdim, cpc_v2, yadim")
    p.add_argument(
        "--method-kwargs",
        type=json.loads,
        default={},
        help="JSON, e.g. '{\"width\": 16}', merged over the defaults (an example's own kwargs)",
    )
    p.add_argument(
        "--augment-kwargs",
        type=json.loads,
        default=None,
        help="JSON overrides of the augmentation, e.g. '{\"flip_p\": 0.0}' "
        "(default: none, or csl_ext.data.digits.AUGMENT_OVERRIDES on digits)",
    )
    p.add_argument("--dataset", default=d.dataset, help="digits (embedded), cifar10, stl10, folder")
    p.add_argument(
        "--data-root",
        default=None,
        help="dataset directory (not needed for digits); folder: DIR/train/<class>/*.jpg, DIR/val/...",
    )
    p.add_argument("--image-size", type=int, default=None, help="default: the dataset's")
    p.add_argument("--subset", type=int, default=None, help="pretrain on the first N images only")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global, over all processes")
    p.add_argument("--num-workers", type=int, default=d.num_workers, help="DALI threads / DataLoader workers")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--output-dir", default=d.output_dir)
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.pt")
    p.add_argument("--backend", default=d.backend, choices=("auto", "dali", "torchvision"))
    p.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after N steps")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--amp", default=d.amp, choices=("auto", "bf16", "fp16", "off"))
    p.add_argument(
        "--no-online-probe",
        dest="online_probe",
        action="store_false",
        help="no linear probe on detached features during training",
    )
    p.add_argument("--probe-lr", type=float, default=d.probe_lr)
    p.add_argument("--max-bad-steps", type=int, default=d.max_bad_steps)
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="folders: skip unreadable image files with a warning (default: stop, naming the file)",
    )
    p.add_argument(
        "--knn-every",
        type=int,
        default=d.knn_every,
        help="steps between online kNN evaluations (0: every epoch; default: 10 per run)",
    )
    p.add_argument(
        "--knn-images", type=int, default=d.knn_images, help="labelled images of the online kNN monitor (0: off)"
    )
    p.add_argument("--eval-protocols", default="mlp", help="comma-separated: mlp,linear,knn")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    if defaults:
        p.set_defaults(**defaults)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed arguments: every field of the dataclass from the
    option of the same name (fields without an option keep their default)."""
    given = vars(args)
    return TrainConfig(**{f.name: given[f.name] for f in dataclasses.fields(TrainConfig) if f.name in given})


def main(argv=None, **defaults) -> int:
    """Runs csl-train; returns the exit status (0: trained and evaluated, or
    stopped with a checkpoint). `defaults` as in `build_parser`; a default
    ``method_kwargs`` dict is merged under ``--method-kwargs``.

    A user error (unknown method or keyword, missing dataset, a file that is
    not a checkpoint) prints ``csl-train: error: ...`` and exits with status 2,
    as argparse does for its own errors; a bug keeps its traceback.
    """
    return run_cli("csl-train", _main, argv, **defaults)


def _main(argv=None, **defaults) -> int:
    base_kwargs = defaults.pop("method_kwargs", None) or {}
    if isinstance(base_kwargs, str):  # a default given as JSON text
        base_kwargs = json.loads(base_kwargs)
    args = build_parser(**defaults).parse_args(argv)
    args.method_kwargs = {**base_kwargs, **args.method_kwargs}  # the command line's over the defaults
    if isinstance(args.augment_kwargs, str):
        args.augment_kwargs = json.loads(args.augment_kwargs)
    if args.augment_kwargs is None:
        args.augment_kwargs = dict(DIGITS_AUGMENT) if args.dataset == "digits" else {}
    # user errors surface before any data is loaded or any step is trained
    check_method_kwargs(args.method, args.method_kwargs)
    protocols = [p.strip() for p in args.eval_protocols.split(",") if p.strip()]
    if not args.no_eval:
        from csl_ext.eval.evaluate import check_protocols

        check_protocols(protocols)
    trainer = Trainer(config_from_args(args))
    result = trainer.fit()
    if trainer.rank != 0:
        return 0
    print(f"{result.status}: {result.step} steps, {result.epoch} epochs; checkpoint {result.checkpoint_path}")
    if result.status != "completed" or args.no_eval:
        return 0
    from csl_ext.train.evaluate import evaluate_pretrained

    scores = evaluate_pretrained(result.method, result.config, result.method_kwargs, protocols=protocols)
    print(f"{'protocol':<10}{'pretrained':>12}{'random init':>13}")
    for proto in scores["pretrained"]:
        print(f"{proto:<10}{scores['pretrained'][proto]:>12.4f}{scores['random_init'][proto]:>13.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
