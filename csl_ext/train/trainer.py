"""The pretraining loop: DDP, AMP, non-finite-loss guard, atomic checkpoints
every epoch and on SIGTERM, exact resume, CSV / TensorBoard / PNG logs.

Launch (see csl_ext.cli and examples/):
    python -m csl_ext.cli --method simclr                       # one process
    torchrun --nproc_per_node=2 -m csl_ext.cli --method simclr  # DDP (gloo on CPU, NCCL on GPUs)

Exactness of --resume: every epoch's augmentation stream and shard order are
drawn from generators seeded by (seed, epoch) alone, the batches already done
in an interrupted epoch are skipped, and the model, optimisers, scheduler,
AMP scaler, method state (MoCo queue, BYOL target), RNG states, epoch and
step are restored; the weights then match an uninterrupted run bit for bit
(on deterministic kernels, i.e. on CPU).
"""
import dataclasses
import inspect
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from csl_ext import distributed
from csl_ext.data import SPLITS, load_dataset
from csl_ext.methods import build_method
from csl_ext.methods.global_bn import convert_to_global_bn
from csl_ext.train.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from csl_ext.train.ddp import all_true, any_true, barrier, setup_distributed
from csl_ext.train.logs import RunLogger, plot_loss

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Everything a pretraining run needs (saved inside its checkpoints).

    Attributes:
        method: a METHODS key (simclr, moco_v2, byol, amdim, cpc_v2, yadim).
        method_kwargs: arguments of the method class (encoder width, ...).
        dataset, data_root, download: see csl_ext.data.load_dataset.
        image_size: None: the dataset's (32 digits / CIFAR, 64 STL-10, 128 folders).
        batch_size: GLOBAL batch size; each of N processes takes batch_size / N.
        epochs: total epochs (the lr and EMA schedules span them).
        stop_after_epochs: stop (with a checkpoint) after this many epochs of
            this invocation, e.g. to split a run over job slots.
        out_dir: checkpoint.pt, log.csv, loss.png and tb/ go here.
        resume: continue from out_dir/checkpoint.pt when it exists.
        backend: augmentation backend, "auto" (DALI when installed), "dali", "torchvision".
        num_workers: loader workers / DALI threads per process.
        amp: mixed precision on GPUs ("auto": on when CUDA is used).
        max_nonfinite: consecutive non-finite losses tolerated (skipped) before aborting.
        subset: pretrain on the first `subset` images only (quick checks).
    """

    method: str = "simclr"
    method_kwargs: dict = field(default_factory=dict)
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    batch_size: int = 256
    epochs: int = 10
    stop_after_epochs: int | None = None
    seed: int = 0
    out_dir: str = "runs/default"
    resume: bool = False
    backend: str = "auto"
    num_workers: int = 0
    amp: str = "auto"
    max_nonfinite: int = 10
    subset: int | None = None
    progress: bool = True
    log_every: int = 1


@dataclass
class TrainResult:
    method: torch.nn.Module
    epoch: int
    step: int
    interrupted: bool
    losses: list
    out_dir: str


class _Sigterm:
    """Records SIGTERM instead of dying, so the loop can checkpoint first."""

    def __init__(self):
        self.received = False
        self.previous = None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no handler
            self.previous = None
        return self

    def _handle(self, signum, frame):
        self.received = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def check_config(cfg: TrainConfig, world: int) -> None:
    """Raises ValueError for configurations that cannot run."""
    for name in ("batch_size", "epochs"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if cfg.batch_size < world:
        raise ValueError(f"batch_size ({cfg.batch_size}) is smaller than the number of processes ({world})")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size ({cfg.batch_size}) must be divisible by the number of processes ({world})")
    if cfg.stop_after_epochs is not None and cfg.stop_after_epochs < 1:
        raise ValueError(f"stop_after_epochs must be None or >= 1, got {cfg.stop_after_epochs!r}")
    if cfg.amp not in ("auto", "on", "off"):
        raise ValueError(f"amp must be 'auto', 'on' or 'off', got {cfg.amp!r}")


def make_method(cfg: TrainConfig, num_classes: int | None, image_size: int):
    """Builds cfg.method, passing image_size to the methods that take it."""
    from csl_ext.methods import METHODS

    if cfg.method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {cfg.method!r}")
    kwargs = dict(cfg.method_kwargs)
    if "image_size" in inspect.signature(METHODS[cfg.method].__init__).parameters:
        kwargs.setdefault("image_size", image_size)
    return build_method(cfg.method, num_classes=num_classes, **kwargs)


def images_hwc(data, chunk: int = 1024) -> np.ndarray:
    """An ImageArray as the uint8 (N, H, W, 3) array csl_ext.augment loads."""
    parts = [data.get_batch(range(i, min(i + chunk, len(data))))[0].permute(0, 2, 3, 1).numpy() for i in range(0, len(data), chunk)]
    return np.ascontiguousarray(np.concatenate(parts))


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def train(cfg: TrainConfig, on_step=None) -> TrainResult:
    """Pretrains cfg.method; returns the (unwrapped) method and the run state.

    Args:
        cfg: the run.
        on_step: optional callable(step) called after each optimiser step.

    Raises:
        ValueError: bad configuration (unknown method, batch / process count,
            MoCo queue not a multiple of the batch, unknown dataset ...).
        FileNotFoundError: a dataset path that does not exist.
        FloatingPointError: more than max_nonfinite consecutive non-finite losses.
    """
    from csl_ext.augment import make_augmentation

    rank, world, device = setup_distributed()
    check_config(cfg, world)
    dataset = cfg.dataset
    if dataset not in SPLITS:
        raise ValueError(f"dataset must be one of {tuple(SPLITS)}, got {dataset!r}")
    data = load_dataset(dataset, SPLITS[dataset][0], cfg.data_root, cfg.download and rank == 0, cfg.image_size)
    if cfg.subset is not None:
        if not hasattr(data, "subset") or cfg.subset < 1:
            raise ValueError(f"subset must be >= 1 and needs an in-memory dataset, got {cfg.subset!r} for {dataset!r}")
        data = data.subset(range(min(cfg.subset, len(data))))
    image_size = data.image_size
    steps_per_epoch = len(data) // cfg.batch_size  # drop_last: equal batches on every process
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size ({cfg.batch_size}) is larger than the dataset ({len(data)} images)")
    total_steps = cfg.epochs * steps_per_epoch

    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    method = make_method(cfg, data.num_classes, image_size)
    method.check_batch_size(cfg.batch_size)
    if world > 1 and method.global_bn:
        convert_to_global_bn(method)
    method.to(device)
    optimizer, scheduler = method.configure_optimizer(cfg.batch_size, total_steps, steps_per_epoch)
    probe_params = method.probe_parameters()
    probe_optimizer = torch.optim.Adam(probe_params, lr=1e-3) if probe_params else None
    model = method
    if world > 1:
        # buffers are not broadcast: global BN keeps them equal already, and
        # MoCo's queue (equal on every process) would cost a copy per step
        model = torch.nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    use_amp = device.type == "cuda" and cfg.amp != "off"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    epoch, step, step_in_epoch = 0, 0, 0
    path = os.path.join(cfg.out_dir, CHECKPOINT)
    if cfg.resume and os.path.exists(path):
        ckpt = load_checkpoint(path, map_location=device)
        if ckpt["config"]["method"] != cfg.method:
            raise ValueError(f"checkpoint {path!r} is of method {ckpt['config']['method']!r}, not {cfg.method!r}")
        method.load_state_dict(ckpt["method"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if probe_optimizer is not None and ckpt.get("probe_optimizer"):
            probe_optimizer.load_state_dict(ckpt["probe_optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        epoch, step, step_in_epoch = ckpt["epoch"], ckpt["step"], ckpt["step_in_epoch"]
        set_rng_state(ckpt["rng"])
        del ckpt

    def save():
        if rank == 0:
            save_atomic({
                "config": dataclasses.asdict(cfg), "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "probe_optimizer": probe_optimizer.state_dict() if probe_optimizer else None,
                "epoch": epoch, "step": step, "step_in_epoch": step_in_epoch, "rng": rng_state(),
                "image_size": image_size, "num_classes": data.num_classes,
            }, path)
        barrier()

    augmentation = make_augmentation(method.augmentation, image_size, backend=cfg.backend)
    images = images_hwc(data) if hasattr(data, "images") else None
    logger = RunLogger(cfg.out_dir) if rank == 0 else None
    per_rank = cfg.batch_size // world
    losses, nonfinite, interrupted = [], 0, False
    first_epoch = epoch
    bar = None
    if rank == 0 and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=step, desc=cfg.method, dynamic_ncols=True)
    method.train()
    with _Sigterm() as sigterm:
        while epoch < cfg.epochs and not interrupted:
            loader = augmentation.loader(
                images, data.labels if images is not None else None,
                file_root=None if images is not None else os.path.join(cfg.data_root, SPLITS[dataset][0]),
                batch_size=per_rank, num_workers=cfg.num_workers, device=device, seed=epoch_seed(cfg.seed, epoch),
                shard_id=rank, num_shards=world, shuffle=True, drop_last=True,
            )
            tick = time.perf_counter()
            for i, batch in enumerate(loader):
                if i >= steps_per_epoch:
                    break
                if i < step_in_epoch:  # done before the interruption
                    continue
                *views, labels = batch
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    out = model(tuple(views), labels)
                # every process must agree before backward (DDP's all-reduce)
                if not all_true(bool(torch.isfinite(out.loss)), device):
                    nonfinite += 1
                    if nonfinite > cfg.max_nonfinite:
                        raise FloatingPointError(f"{nonfinite} consecutive non-finite losses at step {step}")
                    optimizer.zero_grad(set_to_none=True)
                    continue  # skip the update, keep the weights
                nonfinite = 0
                optimizer.zero_grad(set_to_none=True)
                if probe_optimizer is not None:
                    probe_optimizer.zero_grad(set_to_none=True)
                scaler.scale(out.loss).backward()
                scaler.step(optimizer)
                if probe_optimizer is not None:
                    scaler.step(probe_optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                step_in_epoch += 1
                method.on_step_end(step, total_steps)
                loss = float(distributed.all_reduce_mean(out.ssl_loss.float()))
                losses.append(loss)
                now = time.perf_counter()
                speed = cfg.batch_size / max(now - tick, 1e-9)
                tick = now
                if logger is not None and step % cfg.log_every == 0:
                    logger.log({
                        "step": step, "epoch": epoch, "loss": loss, "lr": optimizer.param_groups[0]["lr"],
                        "probe_loss": None if out.probe_loss is None else float(out.probe_loss),
                        "probe_acc": None if out.probe_acc is None else float(out.probe_acc), "images_per_s": speed,
                    })
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}", img_s=f"{speed:.0f}")
                if on_step is not None:
                    on_step(step)
                if any_true(sigterm.received, device):
                    interrupted = True
                    break
            if not interrupted:
                epoch += 1
                step_in_epoch = 0
            save()
            if logger is not None:
                logger.flush()
                plot_loss(logger.path, os.path.join(cfg.out_dir, "loss.png"), f"{cfg.method} on {dataset}")
            if cfg.stop_after_epochs is not None and epoch - first_epoch >= cfg.stop_after_epochs:
                break
    if bar is not None:
        bar.close()
    if logger is not None:
        logger.close()
    if interrupted and rank == 0:
        print(f"SIGTERM: checkpoint written to {path} at epoch {epoch}, step {step}; continue with --resume", flush=True)
    return TrainResult(method, epoch, step, interrupted, losses, cfg.out_dir)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["TrainConfig", "TrainResult", "train", "check_config", "make_method", "cleanup_distributed"]
