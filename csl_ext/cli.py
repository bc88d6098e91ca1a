"""``csl-train``: pretrain a method, then evaluate it beside a random-init encoder.

Examples:
    csl-train --method simclr --dataset digits --epochs 2 --batch-size 128 \\
        --output-dir runs/simclr --method-kwargs '{"width": 16}'
    csl-train ... --resume              # continue from runs/simclr/checkpoint.pt
    torchrun --nproc_per_node=2 -m csl_ext.cli --method simclr ...   # DDP
"""
import argparse
import json
import sys

from csl_ext._cli_errors import run_cli
from csl_ext.data.digits import AUGMENT_OVERRIDES as DIGITS_AUGMENT
from csl_ext.methods.registry import check_method_kwargs
from csl_ext.train import TrainConfig, Trainer

__all__ = ["main", "build_parser"]


def build_parser(**defaults) -> argparse.ArgumentParser:
    """The csl-train argument parser; `defaults` override argument defaults
    (dest names, e.g. method="byol", epochs=5, method_kwargs={...})."""
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="csl-train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--method", default=d.method, help="simclr, moco_v2, byol, amdim, cpc_v2, yadim")
    p.add_argument("--method-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"width": 16}\'')
    p.add_argument("--augment-kwargs", type=json.loads, default=None,
                   help='JSON overrides of the augmentation, e.g. \'{"flip_p": 0.0}\' '
                        "(default: none, or csl_ext.data.digits.AUGMENT_OVERRIDES on digits)")
    p.add_argument("--dataset", default="digits", help="digits (embedded), cifar10, stl10, folder")
    p.add_argument("--data-root", default=None, help="dataset directory (not needed for digits)")
    p.add_argument("--image-size", type=int, default=None, help="default: the dataset's")
    p.add_argument("--subset", type=int, default=None, help="pretrain on the first N images only")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global, over all processes")
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--output-dir", default=d.output_dir)
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.pt")
    p.add_argument("--backend", default=d.backend, choices=("auto", "dali", "torchvision"))
    p.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after N steps")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--amp", default=d.amp, choices=("auto", "bf16", "fp16", "off"))
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--eval-protocols", default="mlp", help="comma-separated: mlp,linear,knn")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    if defaults:
        p.set_defaults(**defaults)
    return p


def config_from_args(args) -> TrainConfig:
    return TrainConfig(method=args.method, method_kwargs=args.method_kwargs, augment_kwargs=args.augment_kwargs,
                       dataset=args.dataset,
                       data_root=args.data_root, image_size=args.image_size, subset=args.subset,
                       epochs=args.epochs, batch_size=args.batch_size, num_workers=args.num_workers,
                       seed=args.seed, output_dir=args.output_dir, resume=args.resume, backend=args.backend,
                       max_steps=args.max_steps, log_every=args.log_every, amp=args.amp, device=args.device,
                       progress=not args.no_progress)


def main(argv=None, **defaults) -> int:
    """Runs csl-train; returns the exit status (0: trained and evaluated, or
    stopped with a checkpoint). `defaults` as in `build_parser`.

    A user error (unknown method or keyword, missing dataset, a file that is
    not a checkpoint) prints ``csl-train: error: ...`` and exits with status 2,
    as argparse does for its own errors; a bug keeps its traceback.
    """
    return run_cli("csl-train", _main, argv, **defaults)


def _main(argv=None, **defaults) -> int:
    args = build_parser(**defaults).parse_args(argv)
    if isinstance(args.method_kwargs, str):  # a default given as JSON text
        args.method_kwargs = json.loads(args.method_kwargs)
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
    if scores is not None:
        print(f"{'protocol':<10}{'pretrained':>12}{'random init':>13}")
        for proto in scores["pretrained"]:
            print(f"{proto:<10}{scores['pretrained'][proto]:>12.4f}{scores['random_init'][proto]:>13.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
