"""End-to-end training steps per method (CPU by default): images/s and where a step's time goes.

    python -m benchmarks.train_step --out benchmarks/results                     # every method, batch 64
    python -m benchmarks.train_step --methods simclr --batch 8 --steps 1 --out /tmp/t   # a smoke run

For every method two pipelines train the same model (same kwargs, same seed) on
the same random uint8 images:
- csl_ext: the fused ops (nt_xent, amdim_nce, cpc_infonce, patchify) and the
  DALI augmentation pipeline on the CPU (torchvision twins when DALI is missing).
- pytorch: the pure-PyTorch references of the same ops (each materialises its
  logits; the path csl_ext takes without its compiled extension) and the
  torchvision augmentation in DataLoader worker processes.

A step's wall time is split into: augmentation (waiting for the loader's next
batch; its workers run ahead while the model trains), encoder forward, encoder
backward, loss (everything else in the forward and backward: heads, target /
momentum encoders, the loss itself) and optimiser (step, zero_grad and the
method's EMA update). The encoder is timed with module hooks, its backward from
the moment the first gradient reaches one of its outputs (autograd runs the
loss's nodes first). Models are the `small` presets below unless --preset paper
(the methods' defaults: minutes per step here).
"""

import argparse
import contextlib
import importlib
import json
import os
import statistics
import time
import warnings

import numpy as np
import torch
from torch.utils._pytree import tree_leaves

from csl_ext.augment import make_augmentation
from csl_ext.augment.factory import dali_available
from csl_ext.methods import build_method

IMAGE_SIZE = 32
# Small models: a step of batch 64 in about a second on two CPU cores.
SMALL = {
    "simclr": dict(arch="resnet18", width=16, hidden_dim=256, proj_dim=64),
    "moco_v2": dict(arch="resnet18", width=16, hidden_dim=256, proj_dim=64, queue_size=4096),
    "byol": dict(arch="resnet18", width=16, hidden_dim=256, proj_dim=64),
    "amdim": dict(ndf=32, n_rkhs=256, depth=2),
    "cpc_v2": dict(blocks=(1, 1, 1), width=16),
    "yadim": dict(ndf=32, n_rkhs=256, depth=2),
}
PHASES = ("augmentation", "encoder_forward", "encoder_backward", "loss", "optimiser")
# Modules whose compiled-op switch the `pytorch` pipeline turns off.
_OP_MODULES = ("csl_ext.ops.info_nce_lse", "csl_ext.ops.amdim_nce", "csl_ext.ops.patchify")


@contextlib.contextmanager
def pure_pytorch_ops():
    """Runs the losses and patchify on their pure-PyTorch references: the
    modules see no compiled extension (their documented fallback)."""
    modules = [importlib.import_module(name) for name in _OP_MODULES]
    saved = [module.has_extension for module in modules]
    for module in modules:
        module.has_extension = lambda: False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="csl_ext: the compiled extension is not available")
            yield
    finally:
        for module, original in zip(modules, saved):
            module.has_extension = original


class EncoderClock:
    """Times the encoder's forward and backward inside a step with hooks.

    The outermost call of `module` is timed (nested encoders, such as CPC's
    patch encoder around its ResNet, count once). Each output that needs a
    gradient gets a hook that records when the first gradient arrives: the
    encoder's backward runs from then until backward() returns.
    """

    def __init__(self, module: torch.nn.Module, sync=lambda: None):
        self.sync = sync  # on CUDA: wait for the kernels before reading the clock
        self.forward_s = 0.0
        self.first_grad_at: float | None = None
        self._depth = 0
        self._start = 0.0
        self._handles = []
        for sub in {
            id(m): m for m in (module, getattr(module, "encoder", None)) if isinstance(m, torch.nn.Module)
        }.values():
            self._handles.append(sub.register_forward_pre_hook(self._before))
            self._handles.append(sub.register_forward_hook(self._after))

    def reset(self) -> None:
        self.forward_s, self.first_grad_at = 0.0, None

    def _before(self, module, args):
        if self._depth == 0:
            self.sync()
            self._start = time.perf_counter()
        self._depth += 1

    def _after(self, module, args, output):
        self._depth -= 1
        if self._depth == 0:
            self.sync()
            self.forward_s += time.perf_counter() - self._start
            for leaf in tree_leaves(output):
                if isinstance(leaf, torch.Tensor) and leaf.requires_grad:
                    leaf.register_hook(self._grad_arrived)

    def _grad_arrived(self, grad):
        if self.first_grad_at is None:
            self.sync()
            self.first_grad_at = time.perf_counter()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def run_pipeline(
    name: str,
    pipeline: str,
    images: np.ndarray,
    batch: int,
    steps: int,
    warmup: int,
    workers: int,
    kwargs: dict,
    device: torch.device,
) -> dict:
    """Trains `name` for warmup + steps steps; returns the median seconds per phase
    over the timed steps and images/s of the median step."""
    torch.manual_seed(0)
    method = build_method(name, **kwargs).to(device)
    method.train()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    total = warmup + steps
    optimizer, scheduler = method.configure_optimizer(batch_size=batch, total_steps=total, steps_per_epoch=total)
    backend = "dali" if pipeline == "csl_ext" and dali_available() else "torchvision"
    loader = make_augmentation(method.augmentation, IMAGE_SIZE, backend=backend).loader(
        images, None, batch_size=batch, num_workers=workers, device=device, seed=0, shuffle=False, drop_last=True
    )
    clock = EncoderClock(method.encoder, sync)
    phases = {phase: [] for phase in PHASES}
    steps_s = []
    ops = pure_pytorch_ops() if pipeline == "pytorch" else contextlib.nullcontext()
    try:
        with ops:
            batches = iter(loader)
            for step in range(total):
                clock.reset()
                t0 = time.perf_counter()
                views = [view.to(device) for view in next(batches)[: method.num_views]]
                sync()
                t1 = time.perf_counter()
                out = method.training_step(views)
                sync()
                t2 = time.perf_counter()
                out.loss.backward()
                sync()
                t3 = time.perf_counter()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                method.on_step_end(step, total)
                sync()
                t4 = time.perf_counter()
                if step < warmup:
                    continue
                encoder_backward = t3 - clock.first_grad_at if clock.first_grad_at is not None else 0.0
                phases["augmentation"].append(t1 - t0)
                phases["encoder_forward"].append(clock.forward_s)
                phases["encoder_backward"].append(encoder_backward)
                phases["loss"].append((t2 - t1 - clock.forward_s) + (t3 - t2 - encoder_backward))
                phases["optimiser"].append(t4 - t3)
                steps_s.append(t4 - t0)
    finally:
        clock.remove()
    step_s = statistics.median(steps_s)
    return {
        "method": name,
        "pipeline": pipeline,
        "augment_backend": backend,
        "batch": batch,
        "images_per_s": batch / step_s,
        "step_s": step_s,
        **{f"{phase}_s": statistics.median(values) for phase, values in phases.items()},
    }


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| method | pipeline (augmentation) | images/s | step ms | "
        + " | ".join(f"{p} ms" for p in PHASES)
        + " | speed-up |",
        "|---" * (len(PHASES) + 5) + "|",
    ]
    base = {r["method"]: r["images_per_s"] for r in rows if r["pipeline"] == "pytorch"}
    for r in rows:
        speedup = f"{r['images_per_s'] / base[r['method']]:.2f}x" if r["method"] in base else "-"
        phases = " | ".join(f"{1e3 * r[p + '_s']:.0f}" for p in PHASES)
        lines.append(
            f"| {r['method']} | {r['pipeline']} ({r['augment_backend']}) | {r['images_per_s']:.1f} "
            f"| {1e3 * r['step_s']:.0f} | {phases} | {speedup} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=sorted(SMALL), choices=sorted(SMALL))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after --warmup untimed ones)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="DALI threads / DataLoader workers")
    parser.add_argument("--preset", choices=("small", "paper"), default="small")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the training process (1: on a shared machine more threads than free "
        "cores stall in OpenMP spin-waits)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (model, augmentation and loss there)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.batch < 2 or args.steps < 1 or args.warmup < 0:
        parser.error("--batch must be >= 2, --steps >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch * (args.steps + args.warmup), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    rows = []
    for name in args.methods:
        kwargs = SMALL[name] if args.preset == "small" else {}
        for pipeline in ("pytorch", "csl_ext"):
            rows.append(
                run_pipeline(name, pipeline, images, args.batch, args.steps, args.warmup, args.workers, kwargs, device)
            )
            print(f"{name} {pipeline}: {rows[-1]['images_per_s']:.1f} images/s", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "train_step.json"), "w") as f:
        json.dump(
            {
                "device": str(device),
                "threads": args.threads,
                "preset": args.preset,
                "image_size": IMAGE_SIZE,
                "rows": rows,
            },
            f,
            indent=1,
        )
    table = to_markdown(rows)
    with open(os.path.join(args.out, "train_step.md"), "w") as f:
        f.write(table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
