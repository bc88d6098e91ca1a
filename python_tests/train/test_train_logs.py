"""A short real run on digits: the loss falls and stays finite; the CSV log,
TensorBoard events and the loss plot are written; non-finite losses are
skipped, then stop the run with a clear error."""

import csv
import math

import pytest
import torch
from conftest import tiny_config

from csl_ext.methods.registry import METHODS, register
from csl_ext.methods.simclr import SimCLR
from csl_ext.train import train


def test_loss_falls_and_logs_are_written(tmp_path):
    cfg = tiny_config(
        tmp_path,
        "simclr",
        subset=256,
        batch_size=32,
        epochs=3,
        tensorboard=True,
        log_every=2,
        method_kwargs={
            "arch": "resnet18",
            "width": 8,
            "proj_dim": 16,
            "temperature": 0.2,  # 0.5 (CIFAR's) moves a width-8 net too little in 24 steps of batch 32
            "warmup_epochs": 0,
            "base_lr": 1.0,
        },
    )
    result = train(cfg)
    losses = result.losses
    assert len(losses) == 24 and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.05, f"loss did not fall: {first:.4f} -> {last:.4f}"

    with open(tmp_path / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(2, 25, 2))
    assert all(float(r["images_per_s"]) > 0 and float(r["lr"]) > 0 for r in rows)
    assert all(0 <= float(r["probe_acc"]) <= 1 for r in rows)  # the online probe on digits' labels
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "checkpoint.pt").exists()


class _NaNAfter(SimCLR):
    """SimCLR whose loss turns NaN from the `bad_from`-th training step on."""

    def __init__(self, bad_from=2, **kwargs):
        super().__init__(**kwargs)
        self.bad_from, self.calls = bad_from, 0

    def ssl_step(self, views):
        loss, h = super().ssl_step(views)
        self.calls += 1
        return (loss * float("nan") if self.calls > self.bad_from else loss), h


@pytest.fixture
def nan_method():
    register("_nan_after")(_NaNAfter)
    yield "_nan_after"
    METHODS.pop("_nan_after")


def test_non_finite_losses_are_skipped_then_stop_the_run(tmp_path, nan_method):
    from conftest import TINY

    cfg = tiny_config(tmp_path, "simclr", max_bad_steps=3)
    cfg.method, cfg.method_kwargs = nan_method, dict(TINY["simclr"], bad_from=2)
    with pytest.raises(FloatingPointError, match="3 non-finite losses in a row"):
        train(cfg)

    # fewer bad steps than the limit: skipped, counted, weights stay finite
    cfg.output_dir, cfg.max_bad_steps, cfg.max_steps = str(tmp_path / "b"), 10, 5
    result = train(cfg)
    assert result.skipped_steps == 3 and result.step == 5
    assert all(torch.isfinite(p).all() for p in result.method.parameters())
