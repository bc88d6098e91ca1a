"""csl-train: pretrain a method, then evaluate it with the paper's protocol
beside a random-init encoder of the same architecture.

    csl-train --method simclr                                   # embedded digits, CPU
    torchrun --nproc_per_node=2 -m csl_ext.cli --method moco_v2 --set queue_size=1024
    csl-train --method yadim --dataset stl10 --data-root ~/data --epochs 200 --batch-size 512
    csl-train --method simclr --out runs/simclr --resume        # continue after SIGTERM / preemption

--set passes method arguments (python literals), e.g. --set width=16 arch='"resnet10"'.
"""
import argparse
import ast
import json

import torch

from csl_ext.train.trainer import TrainConfig, cleanup_distributed, train


def parse_set(items) -> dict:
    """["width=16", "hidden_dim=128"] -> {"width": 16, "hidden_dim": 128}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a bare string
    return out


def run(cfg: TrainConfig, evaluate_after: bool = True, eval_epochs: int = 100, compare_random: bool = True) -> dict:
    """Pretrains, then (on rank 0) evaluates the frozen encoder with the
    paper's MLP protocol and, for comparison, a random-init encoder of the
    same architecture. Returns {"accuracy", "random_init_accuracy", ...}."""
    from csl_ext import distributed
    from csl_ext.eval import evaluate
    from csl_ext.train.trainer import make_method

    result = train(cfg)
    report = {"method": cfg.method, "dataset": cfg.dataset, "epochs_done": result.epoch, "steps": result.step,
              "interrupted": result.interrupted}
    if evaluate_after and not result.interrupted and distributed.rank() == 0:
        method = result.method
        report["accuracy"] = evaluate(method, cfg.dataset, cfg.data_root, cfg.image_size, ("mlp",), eval_epochs)["mlp"]
        if compare_random:
            torch.manual_seed(cfg.seed + 1)
            random_method = make_method(cfg, method.num_classes, result_image_size(method, cfg)).to(next(method.parameters()).device)
            report["random_init_accuracy"] = evaluate(random_method, cfg.dataset, cfg.data_root, cfg.image_size, ("mlp",), eval_epochs)["mlp"]
    cleanup_distributed()
    return report


def result_image_size(method, cfg: TrainConfig) -> int:
    from csl_ext.data import DEFAULT_SIZE

    return cfg.image_size or DEFAULT_SIZE[cfg.dataset]


def build_parser(defaults: TrainConfig | None = None) -> argparse.ArgumentParser:
    d = defaults or TrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default=d.method)
    p.add_argument("--dataset", default=d.dataset, help="digits (embedded), cifar10, stl10 or folder")
    p.add_argument("--data-root", default=d.data_root)
    p.add_argument("--download", action="store_true", help="fetch cifar10 / stl10 into --data-root (needs network)")
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size over all processes")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--stop-after-epochs", type=int, default=d.stop_after_epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=d.out_dir, help="checkpoint, log.csv, loss.png and tb/ go here")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--backend", default=d.backend, choices=("auto", "dali", "torchvision"))
    p.add_argument("--workers", type=int, default=d.num_workers)
    p.add_argument("--amp", default=d.amp, choices=("auto", "on", "off"))
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="method arguments")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--eval-epochs", type=int, default=100)
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args, method_kwargs: dict | None = None) -> TrainConfig:
    kwargs = dict(method_kwargs or {})
    kwargs.update(parse_set(args.set))
    return TrainConfig(
        method=args.method, method_kwargs=kwargs, dataset=args.dataset, data_root=args.data_root,
        download=args.download, image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs,
        stop_after_epochs=args.stop_after_epochs, seed=args.seed, out_dir=args.out, resume=args.resume,
        backend=args.backend, num_workers=args.workers, amp=args.amp, progress=not args.no_progress,
    )


def main(argv=None, defaults: TrainConfig | None = None) -> dict:
    args = build_parser(defaults).parse_args(argv)
    cfg = config_from_args(args, defaults.method_kwargs if defaults and args.method == defaults.method else None)
    report = run(cfg, evaluate_after=not args.no_eval, eval_epochs=args.eval_epochs)
    if "accuracy" in report:
        print(f"{cfg.method} on {cfg.dataset}: MLP-protocol test accuracy {report['accuracy']:.4f} "
              f"(random-init encoder: {report.get('random_init_accuracy', float('nan')):.4f})", flush=True)
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
