"""The pretraining loop: data, method, DDP, AMP, logs, checkpoints, resume.

The loop is written out (nanoGPT / DINO style) so that each concern is
visible: one optimiser step per batch, a non-finite-loss guard, progress and
logs on rank 0, a checkpoint every epoch and on SIGTERM, and an exact resume:
each epoch's augmentation loader is seeded by (seed, epoch) alone, a mid-epoch
resume replays and discards the batches already consumed, and the RNG states
are restored, so 1 epoch + resume + 1 epoch equals 2 epochs bit for bit.

Example:
    >>> from csl_ext.train import TrainConfig, train
    >>> result = train(TrainConfig(method="simclr", method_kwargs={"width": 16},
    ...                            epochs=2, batch_size=128, output_dir="runs/simclr"))
"""
import contextlib
import functools
import hashlib
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from csl_ext import distributed
from csl_ext.augment import make_augmentation
from csl_ext.data import DEFAULT_SIZE, SPLITS, load_dataset
from csl_ext.methods import build_method
from csl_ext.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from csl_ext.train.config import TrainConfig
from csl_ext.train.distributed_setup import init_distributed, pick_device, wrap_model
from csl_ext.train.run_log import RunLog, plot_loss, progress_bar

__all__ = ["Trainer", "TrainResult", "train", "epoch_seed", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


def epoch_seed(seed: int, epoch: int) -> int:
    """The augmentation seed of `epoch`: a stable hash of (seed, epoch), so an
    epoch's views do not depend on how many epochs ran in this process."""
    digest = hashlib.sha256(f"csl_ext:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class TrainResult:
    """What `Trainer.fit` returns.

    Attributes:
        method: the trained Method (unwrapped from DDP), on the training device.
        config: the config it ran with.
        status: ``completed``, ``interrupted`` (SIGTERM: checkpoint saved) or
            ``max_steps`` (stopped at config.max_steps: checkpoint saved).
        epoch: epochs completed; step: global optimiser steps taken
            (skipped non-finite steps included).
        skipped_steps: steps skipped for a non-finite loss in this call.
        losses: this process's self-supervised loss of every step of this call.
        checkpoint_path: the last checkpoint written.
    """

    method: torch.nn.Module
    config: TrainConfig
    status: str
    epoch: int
    step: int
    skipped_steps: int
    losses: list = field(default_factory=list)
    checkpoint_path: str | None = None
    method_kwargs: dict = field(default_factory=dict)


@functools.lru_cache(maxsize=2)
def _pretrain_set(dataset: str, data_root, image_size: int):
    """The pretraining split, cached: repeated runs in one process (resume
    tests, sweeps) do not decode and resize it again."""
    return load_dataset(dataset, SPLITS[dataset][0], root=data_root, image_size=image_size)


class _RngIsolated:
    """Iterates a loader with the global torch RNG set aside: loaders that seed
    or draw from the global RNG (the torchvision twins without workers) do not
    shift the training step's random stream, and vice versa."""

    def __init__(self, iterable):
        self._it = iter(iterable)
        self._inner = None

    def __next__(self):
        outer = torch.get_rng_state()
        if self._inner is not None:
            torch.set_rng_state(self._inner)
        try:
            return next(self._it)
        finally:
            self._inner = torch.get_rng_state()
            torch.set_rng_state(outer)

    def close(self):
        close = getattr(self._it, "close", None)
        if close is not None:
            close()


class Trainer:
    """Pretrains ``config.method`` on ``config.dataset``.

    Args:
        config: the run's TrainConfig.
        callbacks: callables ``callback(trainer, info)`` run after every step
            on every process, with info = {step, epoch, step_in_epoch, loss};
            e.g. to evaluate, or to send a signal in tests.

    Raises:
        ValueError: a bad config (see TrainConfig.validate), a method that
            rejects the batch size, or a checkpoint of another method.
        FloatingPointError: ``max_bad_steps`` non-finite losses in a row.
    """

    def __init__(self, config: TrainConfig, callbacks=()):
        self.config = config
        self.callbacks = list(callbacks)
        self.stop_requested = False
        self.rank = 0  # set in fit(); the CLI evaluates on rank 0 only

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.config.output_dir, CHECKPOINT_NAME)

    # -- building blocks ---------------------------------------------------------
    def effective_method_kwargs(self, num_classes: int) -> dict:
        """method_kwargs plus the online probe's ``num_classes`` when asked for."""
        kwargs = dict(self.config.method_kwargs)
        if self.config.online_probe and "num_classes" not in kwargs and num_classes >= 2:
            kwargs["num_classes"] = int(num_classes)
        return kwargs

    def _loader(self, epoch: int):
        cfg = self.config
        return self.augmentation.loader(
            self.images, self.labels, batch_size=self.local_batch, num_workers=cfg.num_workers,
            device=self.device, seed=epoch_seed(cfg.seed, epoch), shuffle=True, drop_last=True)

    def _autocast(self):
        if self.device.type != "cuda" or self.config.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _state(self, epoch: int, step: int, step_in_epoch: int) -> dict:
        rngs = rng_state()
        state = {
            "method": self.config.method, "method_kwargs": self.method_kwargs,
            "augment_kwargs": self.config.augment_kwargs,
            "model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "probe_optimizer": None if self.probe_optimizer is None else self.probe_optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rngs, "epoch": epoch, "step": step,
            "step_in_epoch": step_in_epoch, "dataset": self.config.dataset, "data_root": self.config.data_root,
            "image_size": self.image_size, "subset": self.config.subset, "world_size": distributed.world_size(),
            "config": self.config.to_dict(),
        }
        if distributed.world_size() > 1:
            per_rank = [None] * distributed.world_size()
            dist.all_gather_object(per_rank, rngs)  # each process resumes its own streams
            state["rng_per_rank"] = per_rank
        return state

    def save(self, epoch: int, step: int, step_in_epoch: int) -> str:
        """Writes the checkpoint (rank 0) at a step boundary; every process calls it."""
        if step_in_epoch == self.steps_per_epoch:  # the end of an epoch is the start of the next
            epoch, step_in_epoch = epoch + 1, 0
        state = self._state(epoch, step, step_in_epoch)
        if distributed.rank() == 0:
            save_checkpoint(self.checkpoint_path, state)
        if distributed.is_distributed():
            dist.barrier()
        return self.checkpoint_path

    def _restore(self) -> tuple[int, int, int]:
        """Loads the checkpoint into method / optimisers; returns (epoch, step, step_in_epoch)."""
        state = load_checkpoint(self.checkpoint_path)
        cfg = self.config
        for key, mine in (("method", cfg.method), ("method_kwargs", self.method_kwargs),
                          ("augment_kwargs", cfg.augment_kwargs),
                          ("dataset", cfg.dataset), ("image_size", self.image_size), ("subset", cfg.subset)):
            if state.get(key) != mine:
                raise ValueError(f"resume: {self.checkpoint_path} was written with {key}={state.get(key)!r}, "
                                 f"but the config gives {key}={mine!r}; use another output_dir")
        if state["config"].get("batch_size") != cfg.batch_size:
            raise ValueError(f"resume: {self.checkpoint_path} was written with batch_size="
                             f"{state['config'].get('batch_size')!r}, the config gives {cfg.batch_size!r}")
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.probe_optimizer is not None and state.get("probe_optimizer") is not None:
            self.probe_optimizer.load_state_dict(state["probe_optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        per_rank = state.get("rng_per_rank")
        if per_rank is not None and len(per_rank) == distributed.world_size():
            set_rng_state(per_rank[distributed.rank()])
        else:
            set_rng_state(state["rng"])
        return state["epoch"], state["step"], state["step_in_epoch"]

    def _on_sigterm(self, signum, frame):
        # only set a flag: the loop saves and exits at the next step boundary
        self.stop_requested = True

    # -- the run -----------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Runs (or resumes) training; see the module docstring."""
        created_group = init_distributed()
        old_handler = None
        if threading.current_thread() is threading.main_thread():
            old_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.log = None
        try:
            return self._fit()
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
            if self.log is not None:
                self.log.close()
            if created_group:
                dist.destroy_process_group()

    def _setup(self) -> None:
        cfg = self.config
        world = distributed.world_size()
        self.rank = distributed.rank()
        cfg.validate(world)
        self.device = pick_device(cfg.device)
        self.image_size = cfg.image_size or DEFAULT_SIZE[cfg.dataset]
        data = _pretrain_set(cfg.dataset, cfg.data_root, self.image_size)
        n = len(data) if cfg.subset is None else min(cfg.subset, len(data))
        images = data.images[:n]
        images = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        self.images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # N x H x W x 3, as the loaders take
        labels = np.asarray(data.labels[:n], dtype=np.int64)
        self.method_kwargs = self.effective_method_kwargs(data.num_classes if (labels >= 0).any() else 0)
        self.labels = labels if "num_classes" in self.method_kwargs else None

        torch.manual_seed(cfg.seed)  # same initial weights on every process and for the random-init baseline
        self.method = build_method(cfg.method, **self.method_kwargs)
        self.method.check_batch_size(cfg.batch_size)
        self.local_batch = cfg.batch_size // world
        # every process runs the same number of steps (else the last collective hangs)
        self.steps_per_epoch = (len(self.images) // world) // self.local_batch
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size ({cfg.batch_size}) is larger than the {len(self.images)} training "
                             f"images of {cfg.dataset!r} ({world} processes): not one full batch per epoch")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.augmentation = make_augmentation(self.method.augmentation, self.image_size, backend=cfg.backend,
                                              **cfg.augment_kwargs)

        self.model = wrap_model(self.method, self.device)
        self.optimizer, self.scheduler = self.method.configure_optimizer(cfg.batch_size, self.total_steps,
                                                                         self.steps_per_epoch)
        probe = self.method.probe_parameters()
        self.probe_optimizer = torch.optim.Adam(probe, lr=cfg.probe_lr) if probe else None
        on_cuda = self.device.type == "cuda" and cfg.amp != "off"
        bf16 = on_cuda and cfg.amp in ("auto", "bf16") and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        # loss scaling only for fp16: bf16 has fp32's range
        self.scaler = torch.amp.GradScaler("cuda", enabled=on_cuda and not bf16)

    def _fit(self) -> TrainResult:
        cfg = self.config
        self._setup()
        epoch, step, step_in_epoch = 0, 0, 0
        is_main = distributed.rank() == 0
        if cfg.resume and os.path.exists(self.checkpoint_path):
            epoch, step, step_in_epoch = self._restore()
            if is_main:
                print(f"resuming from {self.checkpoint_path}: epoch {epoch}, step {step}")
        elif cfg.resume and is_main:
            print(f"no checkpoint at {self.checkpoint_path}: starting a fresh run")
        os.makedirs(cfg.output_dir, exist_ok=True)
        self.log = RunLog(cfg.output_dir, resume_step=step, tensorboard=cfg.tensorboard, enabled=is_main)
        result = TrainResult(self.method, cfg, "completed", epoch, step, 0, method_kwargs=self.method_kwargs)
        if step >= self.total_steps:
            result.checkpoint_path = self.checkpoint_path
            return result

        bar = None
        if is_main and cfg.progress:
            bar = progress_bar(total=self.total_steps, initial=step, desc=cfg.method)
        nv = self.method.num_views
        bad_in_row = 0
        window = {"loss": 0.0, "acc": 0.0, "acc_n": 0, "n": 0, "steps": 0, "t": time.perf_counter()}
        self.model.train()
        try:
            while epoch < cfg.epochs:
                it = _RngIsolated(self._loader(epoch))
                try:
                    for i in range(self.steps_per_epoch):
                        batch = next(it)
                        if i < step_in_epoch:
                            continue  # consumed before the checkpoint: replayed for the same views after it
                        if i == step_in_epoch and i > 0:
                            window["t"] = time.perf_counter()  # images/s without the replayed batches
                        views = batch[:nv]
                        labels = batch[nv] if self.labels is not None else None

                        with self._autocast():
                            out = self.model(views, labels)
                        # every process must agree to skip, else DDP's all-reduce hangs
                        bad = torch.tensor([0.0 if bool(torch.isfinite(out.loss.detach())) else 1.0])
                        if distributed.is_distributed():
                            bad = bad.to(self.device)
                            dist.all_reduce(bad)
                        if bad.item() > 0:
                            result.skipped_steps += 1
                            bad_in_row += 1
                            self.optimizer.zero_grad(set_to_none=True)
                            if bad_in_row >= cfg.max_bad_steps:
                                raise FloatingPointError(
                                    f"{bad_in_row} non-finite losses in a row at step {step} (epoch {epoch}): "
                                    "lower the learning rate, use amp='off' or check the data; the last good "
                                    f"checkpoint is {self.checkpoint_path}")
                        else:
                            bad_in_row = 0
                            self.scaler.scale(out.loss).backward()
                            self.scaler.step(self.optimizer)
                            if self.probe_optimizer is not None:
                                self.scaler.step(self.probe_optimizer)
                            self.scaler.update()
                            self.optimizer.zero_grad(set_to_none=True)
                            if self.probe_optimizer is not None:
                                self.probe_optimizer.zero_grad(set_to_none=True)
                            self.method.on_step_end(step, self.total_steps)
                        lr = self.optimizer.param_groups[0]["lr"]
                        self.scheduler.step()  # the schedule follows batches, skipped ones included
                        step += 1
                        step_in_epoch = i + 1

                        loss = float(out.ssl_loss)
                        result.losses.append(loss)
                        window["steps"] += 1
                        if math.isfinite(loss):
                            window["loss"] += loss
                            window["n"] += 1
                        if out.probe_acc is not None:
                            window["acc"] += float(out.probe_acc)
                            window["acc_n"] += 1
                        if step % cfg.log_every == 0 or step_in_epoch == self.steps_per_epoch:
                            self._log(window, step, epoch, lr, step_in_epoch, bar)
                        if bar is not None:
                            bar.update(1)
                        for callback in self.callbacks:
                            callback(self, {"step": step, "epoch": epoch, "step_in_epoch": step_in_epoch,
                                            "loss": loss})
                        stop = self._agree(self.stop_requested)
                        if stop or (cfg.max_steps is not None and step >= cfg.max_steps):
                            result.checkpoint_path = self.save(epoch, step, step_in_epoch)
                            result.status = "interrupted" if stop else "max_steps"
                            result.epoch = epoch + (step_in_epoch == self.steps_per_epoch)
                            result.step = step
                            if is_main:
                                why = "SIGTERM" if stop else f"max_steps={cfg.max_steps}"
                                print(f"\nstopped at step {step} ({why}); resume with resume=True / --resume")
                            return result
                finally:
                    it.close()
                    del it
                epoch += 1
                step_in_epoch = 0
                result.checkpoint_path = self.save(epoch - 1, step, self.steps_per_epoch)
            result.epoch, result.step = epoch, step
            return result
        finally:
            if bar is not None:
                bar.close()
            if is_main and os.path.exists(self.log.csv_path):
                self.log.close()
                plot_loss(self.log.csv_path, os.path.join(cfg.output_dir, "loss.png"))

    def _agree(self, flag: bool) -> bool:
        """True on every process when it is True on any (e.g. SIGTERM seen by one)."""
        if not distributed.is_distributed():
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def _log(self, window: dict, step: int, epoch: int, lr: float, step_in_epoch: int, bar) -> None:
        """Writes the mean loss / probe accuracy since the last row (averaged
        over processes) and the throughput of all processes."""
        now = time.perf_counter()
        stats = torch.tensor([window["loss"], window["n"], window["acc"], window["acc_n"]],
                             dtype=torch.float64, device=self.device)
        if distributed.is_distributed():
            dist.all_reduce(stats)
        loss_sum, n, acc_sum, acc_n = stats.tolist()
        images_per_s = self.config.batch_size * window["steps"] / max(now - window["t"], 1e-9)
        loss = loss_sum / n if n else float("nan")
        acc = acc_sum / acc_n if acc_n else None
        self.log.write(step, epoch, loss, lr, images_per_s, acc)
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", img_s=f"{images_per_s:.0f}")
        window.update(loss=0.0, acc=0.0, acc_n=0, n=0, steps=0, t=now)


def train(config: TrainConfig, callbacks=()) -> TrainResult:
    """Shorthand for ``Trainer(config, callbacks).fit()``."""
    return Trainer(config, callbacks).fit()
