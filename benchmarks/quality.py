"""Representation quality at an equal budget: csl_ext beside its random-init
twin and beside the same method assembled from lightly's parts.

For each method and seed:
  * csl_ext: pretrained with csl_ext's trainer (csl_ext.train.train) and the
    method kwargs of its examples/train_<method>.py;
  * random_init: the same encoder before training (same seed, same weights
    the training started from), batch norm as initialised (an identity);
  * random_init_bn: the same weights with the batch-norm statistics of the
    training views (the run at learning rate 0; `bn_statistics_twin`);
  * lightly (SimCLR, MoCo v2, BYOL): lightly 1.6.0's heads, losses, memory
    bank and update_momentum around the same initial encoder, fed the same
    views (csl_ext's augmentation loader with the trainer's per-epoch seeds)
    for the same steps, batch and optimiser (csl_ext.optim.make_optimizer
    with the method's optimiser, lr, weight decay and warm-up);
then the frozen encoder is scored with csl_ext.eval: MLP (1024 hidden), linear
and kNN-20 test accuracy. Writes, under --out-dir:
  results.csv  one row per (method, impl, seed, protocol)
  curves.csv   kNN test accuracy every --eval-every steps
  quality.md   mean +- std over seeds, and whether csl_ext beats both random
               inits (linear and kNN) and is within one std of lightly (or above)
  knn_vs_steps.png

Examples:
    python benchmarks/quality.py --dataset digits --methods simclr,moco_v2,byol --seeds 3 --steps 75 \\
        --batch-size 256
    python benchmarks/quality.py --methods simclr --steps example     # the example's epochs and batch
    python benchmarks/quality.py --quick --out-dir /tmp/q              # seconds: tiny models, a few steps
"""

import argparse
import ast
import copy
import csv
import json
import math
import runpy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csl_ext.augment import make_augmentation  # noqa: E402  (after the sys.path line)
from csl_ext.data import DATASETS, DEFAULT_SIZE, SPLITS, ImageArray, load_dataset  # noqa: E402  (after the sys.path line)
from csl_ext.data.digits import AUGMENT_OVERRIDES as DIGITS_AUGMENT  # noqa: E402  (after the sys.path line)
from csl_ext.eval import evaluate_encoder, extract_features, knn_accuracy  # noqa: E402  (after the sys.path line)
from csl_ext.methods import METHODS, build_method  # noqa: E402  (after the sys.path line)
from csl_ext.methods.budget import ema_momentum, method_optimizer, warmup_steps  # noqa: E402  (after the sys.path line)
from csl_ext.optim import lr_scale_groups  # noqa: E402  (after the sys.path line)
from csl_ext.train import TrainConfig, train  # noqa: E402  (after the sys.path line)
from csl_ext.train.batches import PretrainBatches  # noqa: E402  (after the sys.path line)
from csl_ext.train.trainer import epoch_seed  # noqa: E402  (after the sys.path line)

PROTOCOLS = ("mlp", "linear", "knn")
EXAMPLE_FILE = {
    "simclr": "train_simclr.py",
    "moco_v2": "train_moco.py",
    "byol": "train_byol.py",
    "amdim": "train_amdim.py",
    "cpc_v2": "train_cpc.py",
    "yadim": "train_yadim.py",
}
LIGHTLY_METHODS = ("simclr", "moco_v2", "byol")
# --quick: models small enough that a test runs the whole pipeline in seconds
QUICK_KWARGS = {
    "simclr": {"arch": "resnet10", "width": 4, "proj_dim": 16},
    "moco_v2": {"arch": "resnet10", "width": 4, "hidden_dim": 32, "proj_dim": 16, "queue_size": 64},
    "byol": {"arch": "resnet10", "width": 4, "hidden_dim": 32, "proj_dim": 16},
    "amdim": {"ndf": 8, "n_rkhs": 32, "depth": 1},
    "cpc_v2": {"blocks": (1, 1), "width": 4, "context_blocks": 1},
    "yadim": {"ndf": 8, "n_rkhs": 32, "depth": 1},
}


# -- the examples' settings --------------------------------------------------------------------------------
def example_settings(method: str) -> tuple[dict, dict]:
    """(KWARGS, run_example keyword defaults such as epochs / batch_size /
    image_size) of examples/<file> for `method`, read without running it."""
    path = ROOT / "examples" / EXAMPLE_FILE[method]
    kwargs = dict(runpy.run_path(str(path))["KWARGS"])
    defaults = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_example":
            for kw in node.keywords:
                try:
                    defaults[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    pass
    return kwargs, defaults


# -- lightly twins -----------------------------------------------------------------------------------------
class LightlyTwin(torch.nn.Module):
    """A method assembled from lightly's parts around a given encoder.

    Args:
        name: simclr, moco_v2 or byol.
        encoder: the backbone ((N, 3, H, W) -> (N, F)), copied from the
            csl_ext method before training so both start from one init.
        method: the csl_ext method (its head sizes, temperature, queue,
            momentum settings are mirrored).
        total_steps: the run's length (momentum schedules).
    """

    def __init__(self, name: str, encoder: torch.nn.Module, method, total_steps: int):
        super().__init__()
        from lightly.loss import NegativeCosineSimilarity, NTXentLoss
        from lightly.models.modules import heads

        self.name, self.total_steps = name, total_steps
        self.backbone = encoder
        f = method.feature_dim
        if name == "simclr":
            hidden = method.head.net[0].out_features
            proj = method.head.net[-2].out_features
            self.head = heads.SimCLRProjectionHead(f, hidden, proj)
            self.criterion = NTXentLoss(temperature=method.temperature)
        elif name == "moco_v2":
            first = [m for m in method.head.modules() if isinstance(m, torch.nn.Linear)]
            self.head = heads.MoCoProjectionHead(
                f,
                first[0].out_features,
                first[-1].out_features,
                batch_norm=bool(getattr(method, "head_batch_norm", False)),
            )
            self.key_backbone = copy.deepcopy(encoder).requires_grad_(False)
            self.key_head = copy.deepcopy(self.head).requires_grad_(False)
            self.criterion = NTXentLoss(
                temperature=method.temperature, memory_bank_size=(method.queue_size, first[-1].out_features)
            )
            self.momentum = ema_momentum(method.momentum, total_steps, method.short_run_fraction)
            self.symmetric = method.symmetric
        elif name == "byol":
            hidden, proj = method.head.net[0].out_features, method.head.net[-1].out_features
            self.head = heads.BYOLProjectionHead(f, hidden, proj)
            self.predictor = heads.BYOLPredictionHead(proj, hidden, proj)
            self.target_backbone = copy.deepcopy(encoder).requires_grad_(False)
            self.target_head = copy.deepcopy(self.head).requires_grad_(False)
            self.criterion = NegativeCosineSimilarity()
            self.tau_base, self.predictor_lr_scale = method.tau_base, method.predictor_lr_scale
        else:
            raise ValueError(f"no lightly twin for method {name!r}; there are {LIGHTLY_METHODS}")

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, step: int) -> torch.Tensor:
        """The step's loss on two (N, 3, H, W) views, as lightly's examples compute it."""
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        if self.name == "simclr":
            return self.criterion(self.head(self.backbone(x1)), self.head(self.backbone(x2)))
        if self.name == "moco_v2":
            update_momentum(self.backbone, self.key_backbone, self.momentum)
            update_momentum(self.head, self.key_head, self.momentum)
            pairs = ((x1, x2), (x2, x1)) if self.symmetric else ((x1, x2),)
            q = torch.cat([self.head(self.backbone(a)) for a, _ in pairs])
            with torch.no_grad():
                k = torch.cat([self.key_head(self.key_backbone(b)) for _, b in pairs])
            # symmetric: one call, so both directions meet the same memory bank (as csl_ext's and the
            # MoCo demo's queue do); lightly's loss is the mean over the 2N queries, theirs the sum of
            # the two directions' means, hence the factor
            return len(pairs) * self.criterion(q, k)
        tau = cosine_schedule(step, self.total_steps, self.tau_base, 1.0)
        update_momentum(self.backbone, self.target_backbone, tau)
        update_momentum(self.head, self.target_head, tau)
        p1, p2 = self.predictor(self.head(self.backbone(x1))), self.predictor(self.head(self.backbone(x2)))
        with torch.no_grad():
            z1, z2 = self.target_head(self.target_backbone(x1)), self.target_head(self.target_backbone(x2))
        return 0.5 * (self.criterion(p1, z2) + self.criterion(p2, z1))

    def trainable(self) -> list[dict]:
        """Parameter groups for the optimiser; BYOL's predictor at the csl_ext method's lr scale."""
        params = [p for p in self.parameters() if p.requires_grad]
        if self.name != "byol":
            return [{"params": params}]
        return lr_scale_groups(params, self.predictor, self.predictor_lr_scale)


def train_lightly(name, method_kwargs, augment_kwargs, images, batch_size, epochs, seed, image_size, backend, on_step):
    """Trains the lightly twin; returns its backbone. `on_step(step, backbone)` runs after every step."""
    torch.manual_seed(seed)  # the same initial encoder as the csl_ext run (the trainer seeds the same way)
    method = build_method(name, **method_kwargs)
    steps_per_epoch = len(images) // batch_size
    total = epochs * steps_per_epoch
    twin = LightlyTwin(name, copy.deepcopy(method.encoder), method, total)
    warm = warmup_steps(
        getattr(method, "warmup_epochs", 0), steps_per_epoch, total, getattr(method, "short_run_fraction", None)
    )
    opt, sched = method_optimizer(
        method.optimizer,
        twin.trainable(),
        base_lr=method.base_lr,
        batch_size=batch_size,
        weight_decay=method.weight_decay,
        total_steps=total,
        warmup=warm,
    )
    aug = make_augmentation(method.augmentation, image_size, backend=backend, **augment_kwargs)
    twin.train()
    step = 0
    for epoch in range(epochs):
        loader = aug.loader(
            images,
            None,
            batch_size=batch_size,
            num_workers=0,
            device="cpu",
            seed=epoch_seed(seed, epoch),
            shuffle=True,
            drop_last=True,
        )
        for batch in loader:
            x1, x2 = batch[0], batch[1]
            loss = twin.loss(x1, x2, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            on_step(step, twin.backbone)
    return twin.backbone


# -- the untrained encoder with the data's batch-norm statistics -------------------------------------------
# BN's running averages (momentum 0.1) keep 0.9^50 = 0.5% of their initial values after 50 steps
BN_TWIN_STEPS = 50


@torch.no_grad()
def bn_statistics_twin(name, method_kwargs, augment_kwargs, images, batch_size, seed, image_size, backend):
    """The random-init method after the training run's first steps at
    learning rate 0: the same initial weights, with the batch-norm running
    statistics that the method's own training forward passes accumulate over
    min(run, BN_TWIN_STEPS) batches of the trainer's views; returns it in eval mode.

    Why: a fresh BN layer's running statistics are mean 0 and variance 1, so
    the random-init twin is evaluated with every BN an identity. The first
    training steps replace them by the statistics of the augmented views,
    whatever the optimiser does; this twin measures that change alone, so that
    what training adds can be told from it (docs/quality.md).

    Args:
        images: uint8 (N, S, S, 3) pretraining images, as the loaders take them.
    """
    torch.manual_seed(seed)  # the trainer's initial weights
    method = build_method(name, **method_kwargs)
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in method.modules()):
        return method.eval()  # nothing to gather (CPC v2's encoder normalises per image): the random init
    method.check_batch_size(batch_size)
    data = ImageArray(torch.from_numpy(images).permute(0, 3, 1, 2), np.zeros(len(images)), num_classes=1)
    aug = make_augmentation(method.augmentation, image_size, backend=backend, **augment_kwargs)
    batches = PretrainBatches(
        data,
        aug,
        local_batch=batch_size,
        rank=0,
        world_size=1,
        num_workers=0,
        device=torch.device("cpu"),
        seed=seed,
        with_labels=False,
    )
    method.train()
    step, epoch = 0, 0
    while step < BN_TWIN_STEPS:
        for views, _, ids in batches.epoch(epoch):
            method(views, None, ids)
            step += 1
            if step == BN_TWIN_STEPS:
                break
        epoch += 1
    return method.eval()


# -- one cell ----------------------------------------------------------------------------------------------
class KnnCurve:
    """kNN test accuracy of the encoder every `every` steps (and at the end)."""

    def __init__(self, train_set, test_set, every: int, total: int):
        self.train_set, self.test_set, self.every, self.total = train_set, test_set, every, total
        self.points: list[tuple[int, float]] = []

    def __call__(self, step: int, encoder) -> None:
        if step % self.every and step != self.total:
            return
        train_x = extract_features(encoder, self.train_set)
        test_x = extract_features(encoder, self.test_set)
        acc = knn_accuracy(
            train_x,
            torch.as_tensor(np.asarray(self.train_set.labels)),
            test_x,
            torch.as_tensor(np.asarray(self.test_set.labels)),
        )
        self.points.append((step, acc))


def run_cell(
    args,
    name: str,
    seed: int,
    method_kwargs: dict,
    augment_kwargs: dict,
    epochs: int,
    batch: int,
    pretrain,
    eval_sets,
    out_dir: Path,
) -> list[dict]:
    """Trains csl_ext (and lightly) for one (method, seed); returns result rows and fills curves."""
    train_set, test_set = eval_sets
    rows, curves = [], []
    probe_kwargs = {"epochs": args.probe_epochs}
    spe = len(pretrain) // batch
    total = epochs * spe
    every = args.eval_every or max(1, total // 5)

    def score(impl, encoder, seconds, curve):
        acc = evaluate_encoder(encoder, train_set, test_set, protocols=PROTOCOLS, seed=seed, probe_kwargs=probe_kwargs)
        for proto in PROTOCOLS:
            rows.append(
                {
                    "method": name,
                    "impl": impl,
                    "seed": seed,
                    "steps": total,
                    "batch_size": batch,
                    "protocol": proto,
                    "accuracy": round(acc[proto], 5),
                    "train_seconds": round(seconds, 1),
                }
            )
        for step, knn in curve:
            curves.append({"method": name, "impl": impl, "seed": seed, "step": step, "knn": round(knn, 5)})
        print(
            f"  {name:8s} {impl:11s} seed {seed}: "
            + ", ".join(f"{p} {acc[p]:.4f}" for p in PROTOCOLS)
            + f"  ({seconds:.0f} s)",
            flush=True,
        )

    torch.manual_seed(seed)  # the trainer's initial weights
    random_init = build_method(name, **method_kwargs).eval()
    start_curve = KnnCurve(train_set, test_set, 1, 0)
    start_curve(0, random_init)
    score("random_init", random_init, 0.0, [])
    t0 = time.perf_counter()
    untrained_bn = bn_statistics_twin(
        name, method_kwargs, augment_kwargs, pretrain, batch, seed, args.image_size, args.backend
    )
    score("random_init_bn", untrained_bn, time.perf_counter() - t0, [])
    if args.baselines_only:
        return rows, curves

    curve = KnnCurve(train_set, test_set, every, total)
    cfg = TrainConfig(
        method=name,
        method_kwargs=method_kwargs,
        augment_kwargs=augment_kwargs,
        dataset=args.dataset,
        data_root=args.data_root,
        image_size=args.image_size,
        subset=args.subset,
        epochs=epochs,
        batch_size=batch,
        num_workers=args.num_workers,
        seed=seed,
        backend=args.backend,
        output_dir=str(out_dir / "runs" / f"{name}_seed{seed}"),
        log_every=max(1, spe),
        online_probe=False,
        progress=False,
        tensorboard=False,
        device="cpu",
        amp="off",
    )
    t0 = time.perf_counter()
    result = train(cfg, callbacks=[lambda trainer, info: curve(info["step"], trainer.method)])
    seconds = time.perf_counter() - t0
    score("csl_ext", result.method, seconds, start_curve.points + curve.points)

    if name in LIGHTLY_METHODS and not args.no_lightly:
        curve = KnnCurve(train_set, test_set, every, total)
        t0 = time.perf_counter()
        backbone = train_lightly(
            name, method_kwargs, augment_kwargs, pretrain, batch, epochs, seed, args.image_size, args.backend, curve
        )
        score("lightly", backbone.eval(), time.perf_counter() - t0, start_curve.points + curve.points)
    return rows, curves


# -- the report --------------------------------------------------------------------------------------------
def summarise(rows: list[dict]) -> dict:
    """{(method, impl): {protocol: (mean, std, n)}} over seeds (std: sample, 0 for one seed)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["impl"]), {}).setdefault(r["protocol"], []).append(float(r["accuracy"]))
    out = {}
    for key, by_proto in groups.items():
        out[key] = {
            p: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)) for p, v in by_proto.items()
        }
    return out


def verdicts(summary: dict, method: str) -> dict:
    """Whether csl_ext beats random init on linear and kNN (means), with BN as
    initialised and with the data's BN statistics (`bn_statistics_twin`), and is
    within one std (the larger of the two) of lightly, or above, on every protocol."""
    csl, rnd, rnd_bn, lig = (summary.get((method, i)) for i in ("csl_ext", "random_init", "random_init_bn", "lightly"))
    out = {"beats_random_init": None, "beats_random_init_bn": None, "matches_lightly": None}
    if csl and rnd:
        out["beats_random_init"] = all(csl[p][0] > rnd[p][0] for p in ("linear", "knn"))
    if csl and rnd_bn:
        out["beats_random_init_bn"] = all(csl[p][0] > rnd_bn[p][0] for p in ("linear", "knn"))
    if csl and lig:
        out["matches_lightly"] = all(csl[p][0] >= lig[p][0] - max(csl[p][1], lig[p][1]) for p in PROTOCOLS)
    return out


def markdown_table(summary: dict, budgets: dict, command: str) -> str:
    def cell(v):
        return f"{v[0]:.3f} ± {v[1]:.3f}"

    def yes(v):
        return "n/a" if v is None else ("yes" if v else "**no**")

    header = (
        "| method | budget (steps x batch) | impl | seeds | MLP | linear | kNN | beats random init "
        "(linear and kNN) | beats random init with the data's BN statistics | within 1 std of lightly or above |"
    )
    lines = [f"Command: `{command}`", "", header, "|---|---|---|---|---|---|---|---|---|---|"]
    for method in dict.fromkeys(m for m, _ in summary):
        v = verdicts(summary, method)
        for impl in ("csl_ext", "random_init", "random_init_bn", "lightly"):
            s = summary.get((method, impl))
            if s is None:
                continue
            keys = ("beats_random_init", "beats_random_init_bn", "matches_lightly")
            flags = [yes(v[k]) if impl == "csl_ext" else "" for k in keys]
            lines.append(
                f"| {method} | {budgets[method]} | {impl} | {s['mlp'][2]} | {cell(s['mlp'])} | "
                f"{cell(s['linear'])} | {cell(s['knn'])} | {' | '.join(flags)} |"
            )
    return "\n".join(lines) + "\n"


def plot_curves(curves: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(c["method"] for c in curves))
    fig, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 3.2), squeeze=False)
    for ax, method in zip(axes[0], methods):
        for impl in ("csl_ext", "lightly"):
            pts: dict = {}
            for c in curves:
                if c["method"] == method and c["impl"] == impl:
                    pts.setdefault(int(c["step"]), []).append(float(c["knn"]))
            if pts:
                steps = sorted(pts)
                mean = np.array([np.mean(pts[s]) for s in steps])
                std = np.array([np.std(pts[s]) for s in steps])
                ax.plot(steps, mean, marker="o", label=impl)
                ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        ax.set_title(method)
        ax.set_xlabel("training step")
        ax.set_ylabel("kNN test accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# -- command line ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-root", default=None)
    p.add_argument("--methods", default="simclr,moco_v2,byol,amdim,cpc_v2,yadim")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from FIRST_SEED to FIRST_SEED + SEEDS - 1")
    p.add_argument(
        "--steps",
        default="75",
        help="training steps (rounded up to whole epochs), or 'example' for the example's epochs and batch size",
    )
    p.add_argument("--batch-size", type=int, default=256, help="ignored with --steps example")
    p.add_argument("--image-size", type=int, default=None, help="default: the example's, else the dataset's")
    p.add_argument("--subset", type=int, default=None, help="pretrain on the first N images only")
    p.add_argument(
        "--method-kwargs",
        type=json.loads,
        default={},
        help="JSON {method: {kwarg: value}} merged over the example's KWARGS",
    )
    p.add_argument(
        "--augment-kwargs",
        type=json.loads,
        default=None,
        help="JSON augmentation overrides (default: none, or the digits overrides on digits)",
    )
    p.add_argument("--eval-every", type=int, default=None, help="steps between kNN points (default: run / 5)")
    p.add_argument("--probe-epochs", type=int, default=50)
    p.add_argument("--backend", default="torchvision", choices=("auto", "dali", "torchvision"))
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--no-lightly", action="store_true", help="skip the lightly twins")
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="score the two random-init twins only (no training): seconds to minutes per cell",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny models, 64 images, 2 steps, 2 probe epochs: checks the pipeline in seconds",
    )
    p.add_argument("--out-dir", default="runs/quality")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    command = "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS or m not in EXAMPLE_FILE]
    if unknown or not methods:
        raise SystemExit(f"--methods must name some of {sorted(EXAMPLE_FILE)}, got {args.methods!r}")
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
    if args.quick:
        args.subset, args.batch_size, args.steps, args.probe_epochs = 64, 32, "2", 2
    if args.steps != "example" and (not args.steps.isdigit() or int(args.steps) < 1):
        raise SystemExit(f"--steps must be a positive integer or 'example', got {args.steps!r}")
    if args.augment_kwargs is None:
        args.augment_kwargs = dict(DIGITS_AUGMENT) if args.dataset == "digits" else {}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows, curves, budgets = [], [], {}
    for name in methods:
        kwargs, example = example_settings(name)
        kwargs.update(args.method_kwargs.get(name, {}))
        if args.quick:
            kwargs.update(QUICK_KWARGS[name])
        batch = args.batch_size
        if args.steps == "example":
            batch, epochs = example.get("batch_size", 256), example.get("epochs", 10)
        # the example's image size (AMDIM's encoder is built for one size); --quick: 16 px where any size works
        quick_size = 16 if args.quick and name in LIGHTLY_METHODS else None
        size = args.image_size or quick_size or example.get("image_size") or DEFAULT_SIZE[args.dataset]
        cell_args = copy.copy(args)
        cell_args.image_size = size
        pretrain = load_dataset(args.dataset, SPLITS[args.dataset][0], root=args.data_root, image_size=size)
        n = len(pretrain) if args.subset is None else min(args.subset, len(pretrain))
        pretrain_images = pretrain.images[:n].permute(0, 2, 3, 1).numpy()  # N x S x S x 3, as the loaders take
        spe = n // batch
        if spe < 1:
            raise SystemExit(f"--batch-size {batch} is larger than the {n} pretraining images")
        if args.steps != "example":
            epochs = math.ceil(int(args.steps) / spe)
        eval_sets = tuple(
            load_dataset(args.dataset, split, root=args.data_root, image_size=size)
            for split in SPLITS[args.dataset][1:]
        )
        try:  # a user's bad settings: one line now, not a traceback minutes into the first cell
            build_method(name, **kwargs).check_batch_size(batch)
        except (TypeError, ValueError) as e:
            raise SystemExit(f"--method-kwargs / --batch-size for {name}: {e}") from None
        budgets[name] = f"{epochs * spe} x {batch} ({epochs} epochs, {size} px)"
        print(f"{name}: {budgets[name]}, kwargs {kwargs}", flush=True)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r, c = run_cell(
                cell_args, name, seed, kwargs, args.augment_kwargs, epochs, batch, pretrain_images, eval_sets, out_dir
            )
            rows += r
            curves += c
            write_csv(out_dir / "results.csv", rows)  # after every cell: a long run can be read while it runs

    summary = summarise(rows)
    table = markdown_table(summary, budgets, command)
    (out_dir / "quality.md").write_text(table)
    if curves:  # none with --baselines-only
        write_csv(out_dir / "curves.csv", curves)
        plot_curves(curves, out_dir / "knn_vs_steps.png")
    print(table)
    return summary


if __name__ == "__main__":
    main()
