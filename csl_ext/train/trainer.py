"""The pretraining loop: data, method, DDP, AMP, logs, checkpoints, resume.

The loop is written out (nanoGPT / DINO style) as named steps: `_resume`,
`_train_step` (one optimiser step with a non-finite-loss guard), `_log`,
`_monitor` (online kNN), `_should_stop` and `save` (a checkpoint every epoch,
at max_steps and on SIGTERM). Batches come from `PretrainBatches`, one
interface over in-memory arrays and image folders (csl_ext.train.batches).

Exact resume: each epoch's loader is seeded by (seed, epoch) alone and a
mid-epoch resume starts the epoch's loader at the next batch, with the RNG
states restored, so 1 epoch + resume + 1 epoch equals 2 epochs bit for bit.

Example:
    >>> from csl_ext.train import TrainConfig, train
    >>> result = train(TrainConfig(method="simclr", method_kwargs={"width": 16},
    ...                            epochs=2, batch_size=128, output_dir="runs/simclr"))
"""

import contextlib
import inspect
import os
import signal
import threading
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from csl_ext import distributed
from csl_ext.augment import make_augmentation
from csl_ext.data import DEFAULT_SIZE, SPLITS, load_dataset
from csl_ext.methods import METHODS, build_method
from csl_ext.train.batches import PretrainBatches, epoch_seed
from csl_ext.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from csl_ext.train.config import TrainConfig
from csl_ext.train.distributed_setup import init_distributed, pick_device, wrap_model
from csl_ext.train.knn_monitor import KnnMonitor
from csl_ext.train.run_log import RunLog, plot_loss, progress_bar
from csl_ext.train.running_stats import RunningStats

__all__ = ["Trainer", "TrainResult", "train", "epoch_seed", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


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
        knn: (step, kNN accuracy) of every online kNN evaluation of this call (rank 0).
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
    knn: list = field(default_factory=list)


@dataclass
class Position:
    """Where the run is: epochs done, global steps done, steps done in `epoch`."""

    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0


def _dataset(config: TrainConfig, split: str, image_size: int):
    return load_dataset(
        config.dataset,
        split,
        root=config.data_root,
        image_size=image_size,
        skip_bad_images=config.skip_bad_images,
        num_workers=config.num_workers,
    )


class Trainer:
    """Pretrains ``config.method`` on ``config.dataset``.

    Args:
        config: the run's TrainConfig.
        callbacks: callables ``callback(trainer, info)`` run after every step
            on every process, with info = {step, epoch, step_in_epoch, loss};
            e.g. to evaluate, or to send a signal in tests.

    Raises:
        ValueError: a bad config (see TrainConfig.validate), a method that
            rejects the batch size, or a checkpoint of another run.
        FloatingPointError: ``max_bad_steps`` non-finite losses in a row.
    """

    def __init__(self, config: TrainConfig, callbacks=()):
        self.config = config
        self.callbacks = list(callbacks)
        self.stop_requested = False
        self.rank = 0  # set in fit(); the CLI evaluates on rank 0 only
        self.is_main = True
        # built by _setup() when fit() runs
        self.device: torch.device | None = None
        self.image_size: int | None = None
        self.batches: PretrainBatches | None = None
        self.method_kwargs: dict = {}
        self.method = self.model = None
        self.optimizer = self.scheduler = self.probe_optimizer = self.scaler = None
        self.amp_dtype = torch.float32
        self.steps_per_epoch = self.total_steps = 0
        self.knn_monitor: KnnMonitor | None = None
        self.log: RunLog | None = None
        self.stats = RunningStats()
        self.bad_in_row = 0
        self.lr = 0.0  # of the last step, for the log
        self.progress_bar = None

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.config.output_dir, CHECKPOINT_NAME)

    # -- set-up ------------------------------------------------------------------
    def effective_method_kwargs(self, num_classes: int) -> dict:
        """method_kwargs plus the online probe's ``num_classes`` when asked for,
        and the training image size for methods built for one (AMDIM / YADIM
        presets, CPC's patch grid) unless method_kwargs names another."""
        kwargs = dict(self.config.method_kwargs)
        if self.config.online_probe and "num_classes" not in kwargs and num_classes >= 2:
            kwargs["num_classes"] = int(num_classes)
        takes_size = "image_size" in inspect.signature(METHODS[self.config.method]).parameters
        if takes_size and "image_size" not in kwargs and self.image_size is not None:
            kwargs["image_size"] = int(self.image_size)
        return kwargs

    def _setup(self) -> None:
        cfg = self.config
        world = distributed.world_size()
        self.rank = distributed.rank()
        self.is_main = self.rank == 0
        cfg.validate(world)
        self.device = pick_device(cfg.device)
        self.image_size = cfg.image_size or DEFAULT_SIZE[cfg.dataset]
        data = _dataset(cfg, SPLITS[cfg.dataset][0], self.image_size)
        has_labels = bool((data.labels >= 0).any())
        self.method_kwargs = self.effective_method_kwargs(data.num_classes if has_labels else 0)

        torch.manual_seed(cfg.seed)  # same initial weights on every process and for the random-init baseline
        self.method = build_method(cfg.method, **self.method_kwargs)
        self.method.check_batch_size(cfg.batch_size)
        augmentation = make_augmentation(
            self.method.augmentation, self.image_size, backend=cfg.backend, **cfg.augment_kwargs
        )
        self.batches = PretrainBatches(
            data,
            augmentation,
            local_batch=cfg.batch_size // world,
            rank=self.rank,
            world_size=world,
            num_workers=cfg.num_workers,
            device=self.device,
            seed=cfg.seed,
            with_labels="num_classes" in self.method_kwargs,
            subset=cfg.subset,
        )
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.total_steps = cfg.epochs * self.steps_per_epoch

        self.model = wrap_model(self.method, self.device)
        self.optimizer, self.scheduler = self.method.configure_optimizer(
            cfg.batch_size, self.total_steps, self.steps_per_epoch
        )
        probe = self.method.probe_parameters()
        self.probe_optimizer = torch.optim.Adam(probe, lr=cfg.probe_lr) if probe else None
        on_cuda = self.device.type == "cuda" and cfg.amp != "off"
        bf16 = on_cuda and cfg.amp in ("auto", "bf16") and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        # loss scaling only for fp16: bf16 has fp32's range
        self.scaler = torch.amp.GradScaler("cuda", enabled=on_cuda and not bf16)
        if self.is_main and cfg.knn_images > 0:
            pretrain_split, labelled_split, _ = SPLITS[cfg.dataset]
            labelled = data if labelled_split == pretrain_split else _dataset(cfg, labelled_split, self.image_size)
            self.knn_monitor = KnnMonitor(labelled, cfg.knn_images, cfg.seed, num_workers=cfg.num_workers)

    # -- checkpoints -------------------------------------------------------------
    def _state(self, pos: Position) -> dict:
        rngs = rng_state()
        state = {
            "method": self.config.method,
            "method_kwargs": self.method_kwargs,
            "augment_kwargs": self.config.augment_kwargs,
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "probe_optimizer": None if self.probe_optimizer is None else self.probe_optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "epoch": pos.epoch,
            "step": pos.step,
            "step_in_epoch": pos.step_in_epoch,
            "dataset": self.config.dataset,
            "data_root": self.config.data_root,
            "image_size": self.image_size,
            "subset": self.config.subset,
            "num_images": self.batches.num_images,
            "world_size": distributed.world_size(),
            "config": self.config.to_dict(),
        }
        if distributed.world_size() > 1:
            per_rank = [None] * distributed.world_size()
            dist.all_gather_object(per_rank, rngs)  # each process resumes its own streams
            state["rng_per_rank"] = per_rank
        return state

    def save(self, pos: Position) -> str:
        """Writes the checkpoint (rank 0) at a step boundary; every process calls it."""
        if pos.step_in_epoch == self.steps_per_epoch:  # the end of an epoch is the start of the next
            pos = Position(pos.epoch + 1, pos.step, 0)
        state = self._state(pos)
        if self.is_main:
            save_checkpoint(self.checkpoint_path, state)
        if distributed.is_distributed():
            dist.barrier()
        return self.checkpoint_path

    def _resume(self) -> Position:
        """The position to start from: the checkpoint's with resume=True (its
        weights, optimiser and RNG states loaded), else the beginning."""
        cfg = self.config
        if not cfg.resume:
            return Position()
        if not os.path.exists(self.checkpoint_path):
            if self.is_main:
                print(f"no checkpoint at {self.checkpoint_path}: starting a fresh run")
            return Position()
        state = load_checkpoint(self.checkpoint_path)
        for key, mine in (
            ("method", cfg.method),
            ("method_kwargs", self.method_kwargs),
            ("augment_kwargs", cfg.augment_kwargs),
            ("dataset", cfg.dataset),
            ("image_size", self.image_size),
            ("subset", cfg.subset),
            ("num_images", self.batches.num_images),
            ("batch_size", cfg.batch_size),
        ):
            theirs = state["config"].get(key) if key == "batch_size" else state.get(key, mine)
            if theirs != mine:
                raise ValueError(
                    f"resume: {self.checkpoint_path} was written with {key}={theirs!r}, but this run "
                    f"has {key}={mine!r} (a changed folder or config would not replay the same "
                    "samples); use another output_dir"
                )
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
        pos = Position(state["epoch"], state["step"], state["step_in_epoch"])
        if self.is_main:
            print(f"resuming from {self.checkpoint_path}: epoch {pos.epoch}, step {pos.step}")
        return pos

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
        try:
            return self._fit()
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
            if self.log is not None:
                self.log.close()
            if created_group:
                dist.destroy_process_group()

    def _fit(self) -> TrainResult:
        cfg = self.config
        self._setup()
        pos = self._resume()
        os.makedirs(cfg.output_dir, exist_ok=True)
        self.log = RunLog(cfg.output_dir, resume_step=pos.step, tensorboard=cfg.tensorboard, enabled=self.is_main)
        result = TrainResult(
            self.method,
            cfg,
            "completed",
            pos.epoch,
            pos.step,
            0,
            method_kwargs=self.method_kwargs,
            checkpoint_path=self.checkpoint_path if pos.step >= self.total_steps else None,
        )
        if pos.step >= self.total_steps:
            return result
        if self.is_main and cfg.progress:
            self.progress_bar = progress_bar(total=self.total_steps, initial=pos.step, desc=cfg.method)
        self.model.train()
        try:
            while pos.epoch < cfg.epochs:
                stop = self._train_epoch(pos, result)
                if stop is not None:
                    return self._stopped(pos, result, stop)
                result.checkpoint_path = self.save(pos)
                pos.epoch, pos.step_in_epoch = pos.epoch + 1, 0
            result.epoch, result.step = pos.epoch, pos.step
            return result
        finally:
            self._close_progress_and_plot()

    def _train_epoch(self, pos: Position, result: TrainResult) -> str | None:
        """Runs the rest of epoch `pos.epoch`, advancing `pos`; returns why it
        stopped early (``interrupted`` / ``max_steps``) or None at its end."""
        self.stats.reset()  # images/s without the time spent before this epoch's first step
        for views, labels, sample_ids in self.batches.epoch(pos.epoch, pos.step_in_epoch):
            loss, probe_acc = self._train_step(views, labels, sample_ids, pos, result)
            pos.step += 1
            pos.step_in_epoch += 1
            result.losses.append(loss)
            self.stats.add(loss, probe_acc)
            epoch_end = pos.step_in_epoch == self.steps_per_epoch
            knn_due = self._knn_due(pos, epoch_end)  # the same on every process: all of them log (all-reduce)
            knn = self._monitor(pos, result) if knn_due else None
            if pos.step % self.config.log_every == 0 or epoch_end or knn_due:
                self._log(pos, knn)
            if self.progress_bar is not None:
                self.progress_bar.update(1)
            for callback in self.callbacks:
                callback(self, {"step": pos.step, "epoch": pos.epoch, "step_in_epoch": pos.step_in_epoch, "loss": loss})
            stop = self._should_stop(pos)
            if stop is not None:
                return stop
        return None

    def _autocast(self):
        if self.device.type != "cuda" or self.config.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _train_step(self, views, labels, sample_ids, pos: Position, result: TrainResult) -> tuple[float, float | None]:
        """One optimiser step (skipped, on every process, for a non-finite loss);
        returns (self-supervised loss, online-probe accuracy or None)."""
        with self._autocast():
            out = self.model(views, labels, sample_ids)
        # every process must agree to skip, else DDP's all-reduce hangs
        if self._agree(not bool(torch.isfinite(out.loss.detach()))):
            result.skipped_steps += 1
            self.bad_in_row += 1
            self.optimizer.zero_grad(set_to_none=True)
            if self.bad_in_row >= self.config.max_bad_steps:
                raise FloatingPointError(
                    f"{self.bad_in_row} non-finite losses in a row at step {pos.step} (epoch {pos.epoch}): lower the "
                    "learning rate, use amp='off' or check the data; the last good checkpoint is "
                    f"{self.checkpoint_path}"
                )
        else:
            self.bad_in_row = 0
            self.scaler.scale(out.loss).backward()
            self.scaler.step(self.optimizer)
            if self.probe_optimizer is not None:
                self.scaler.step(self.probe_optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.probe_optimizer is not None:
                self.probe_optimizer.zero_grad(set_to_none=True)
            self.method.on_step_end(pos.step, self.total_steps)
        self.lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()  # the schedule follows batches, skipped ones included
        return float(out.ssl_loss), (None if out.probe_acc is None else float(out.probe_acc))

    def _knn_due(self, pos: Position, epoch_end: bool) -> bool:
        """Whether the online kNN monitor runs after this step: every knn_every
        steps, at epoch ends (0), or ten times per run (None)."""
        every = self.config.knn_every
        if self.config.knn_images == 0:
            return False
        if every is None:  # e.g. 440 steps: after steps 44, 88, ..., 440
            return pos.step % max(1, self.total_steps // 10) == 0 or pos.step == self.total_steps
        return epoch_end if every == 0 else pos.step % every == 0

    def _monitor(self, pos: Position, result: TrainResult) -> float | None:
        """The online kNN accuracy of the current encoder (rank 0; None elsewhere)."""
        if self.knn_monitor is None:
            return None
        accuracy = self.knn_monitor(self.method, self.device)  # eval mode inside, training mode restored
        result.knn.append((pos.step, accuracy))
        return accuracy

    def _log(self, pos: Position, knn: float | None) -> None:
        """Writes the mean loss / probe accuracy since the last row (over all
        processes), the throughput of all processes and the kNN accuracy."""
        loss, acc, images_per_s = self.stats.summary(self.config.batch_size, self.device)
        self.log.write(pos.step, pos.epoch, loss, self.lr, images_per_s, acc, knn_acc=knn)
        if self.progress_bar is not None:
            self.progress_bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.lr:.3g}", img_s=f"{images_per_s:.0f}")
        self.stats.reset()

    def _should_stop(self, pos: Position) -> str | None:
        """``interrupted`` (SIGTERM seen by any process), ``max_steps`` or None."""
        if self._agree(self.stop_requested):
            return "interrupted"
        if self.config.max_steps is not None and pos.step >= self.config.max_steps:
            return "max_steps"
        return None

    def _stopped(self, pos: Position, result: TrainResult, why: str) -> TrainResult:
        result.checkpoint_path = self.save(pos)
        result.status = why
        result.epoch = pos.epoch + (pos.step_in_epoch == self.steps_per_epoch)
        result.step = pos.step
        if self.is_main:
            reason = "SIGTERM" if why == "interrupted" else f"max_steps={self.config.max_steps}"
            print(f"\nstopped at step {pos.step} ({reason}); resume with resume=True / --resume")
        return result

    def _close_progress_and_plot(self) -> None:
        if self.progress_bar is not None:
            self.progress_bar.close()
        if self.is_main and os.path.exists(self.log.csv_path):
            self.log.close()
            plot_loss(self.log.csv_path, os.path.join(self.config.output_dir, "loss.png"))

    def _agree(self, flag: bool) -> bool:
        """True on every process when it is True on any (e.g. SIGTERM seen by one)."""
        if not distributed.is_distributed():
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)


def train(config: TrainConfig, callbacks=()) -> TrainResult:
    """Shorthand for ``Trainer(config, callbacks).fit()``."""
    return Trainer(config, callbacks).fit()
