"""Pretraining from an image folder of real JPEG and PNG files (written here):
SimCLR, YADIM and CPC v2 through the API and the csl-train command, exact
resume on the folder path (max_steps and SIGTERM), the online kNN monitor,
and no materialised copy of in-memory datasets."""

import csv
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_same_weights, tiny_config

from csl_ext.augment.factory import dali_available
from csl_ext.train import TrainConfig, Trainer, train
from csl_ext.train.knn_monitor import KnnMonitor

BACKENDS = ["torchvision", pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no DALI"))]
# width-8 encoders at the smallest size each method takes (AMDIM / YADIM presets start at 32 px)
FOLDER_RUNS = {
    "simclr": ({"arch": "resnet18", "width": 8, "hidden_dim": 16, "proj_dim": 8}, 16),  # takes no image_size
    "yadim": ({"ndf": 8, "n_rkhs": 32, "depth": 1}, 32),
    "cpc_v2": ({"blocks": (1, 1), "width": 8, "offsets": (2, 3), "context_blocks": 1}, 16),
}


def folder_config(root, output_dir, method="simclr", **overrides) -> TrainConfig:
    kwargs, size = FOLDER_RUNS[method]
    kw = dict(
        method=method,
        method_kwargs=dict(kwargs),
        dataset="folder",
        data_root=root,
        image_size=size,
        epochs=2,
        batch_size=8,
        num_workers=0,
        seed=1,
        output_dir=str(output_dir),
        backend="torchvision",
        log_every=1,
        progress=False,
        tensorboard=False,
        knn_images=0,
    )
    kw.update(overrides)
    return TrainConfig(**kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", sorted(FOLDER_RUNS))
def test_methods_train_on_a_jpeg_png_folder(method, backend, image_folder, tmp_path):
    root = image_folder(per_class={"train": 6}, classes=3, size=FOLDER_RUNS[method][1] + 4)
    result = train(folder_config(root, tmp_path / "run", method, backend=backend, max_steps=3, num_workers=1))
    assert result.status == "max_steps" and result.step == 3
    assert len(result.losses) == 3 and all(math.isfinite(x) for x in result.losses)
    if method != "simclr":  # methods built for one size get the training size (CPC: 16 px, not its default 32)
        assert result.method_kwargs["image_size"] == FOLDER_RUNS[method][1]
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert all(0 <= float(r["probe_acc"]) <= 1 for r in rows)  # labels from the class folders reach the probe


@pytest.mark.parametrize("backend", BACKENDS)
def test_folder_resume_mid_epoch_equals_uninterrupted(backend, image_folder, tmp_path):
    root = image_folder(per_class={"train": 8}, classes=3, size=20)  # 24 files, batch 8: 3 steps per epoch
    whole = train(folder_config(root, tmp_path / "whole", backend=backend))
    first = train(folder_config(root, tmp_path / "split", backend=backend, max_steps=4))  # 1 step into epoch 2
    assert first.status == "max_steps" and first.step == 4
    with pytest.raises(AssertionError):
        assert_same_weights(first.method, whole.method)
    rest = train(folder_config(root, tmp_path / "split", backend=backend, resume=True))
    assert rest.status == "completed" and rest.step == 6
    assert_same_weights(rest.method, whole.method)  # the same samples and views, bit for bit


def test_folder_sigterm_with_loader_workers_then_resume(image_folder, tmp_path):
    root = image_folder(per_class={"train": 8}, classes=3, size=20)
    cfg = dict(batch_size=2, epochs=1, num_workers=2)  # 12 steps
    whole = train(folder_config(root, tmp_path / "whole", **cfg))

    def sigterm_at_step_5(trainer, info):
        if info["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    stopped = Trainer(folder_config(root, tmp_path / "split", **cfg), callbacks=[sigterm_at_step_5]).fit()
    assert stopped.status == "interrupted" and stopped.step == 5
    # one worker instead of two: each sample's views are seeded by (seed, epoch, index), not by the worker
    resumed = train(folder_config(root, tmp_path / "split", **dict(cfg, num_workers=1), resume=True))
    assert resumed.step == 12
    assert_same_weights(resumed.method, whole.method)


def test_resume_refuses_a_folder_whose_files_changed(image_folder, tmp_path):
    root = image_folder(per_class={"train": 8}, classes=3, size=20)
    train(folder_config(root, tmp_path / "run", max_steps=1))
    os.remove(os.path.join(root, "train", "class_0", "000.jpg"))
    with pytest.raises(ValueError, match="num_images=24"):
        train(folder_config(root, tmp_path / "run", resume=True))


def test_csl_train_command_trains_and_evaluates_on_a_folder(image_folder, tmp_path):
    root = image_folder(per_class={"train": 8, "val": 4}, classes=3, size=20)
    kwargs = '{"arch": "resnet18", "width": 8, "hidden_dim": 16, "proj_dim": 8}'
    cmd = [
        sys.executable,
        "-m",
        "csl_ext.cli",
        "--method",
        "simclr",
        "--method-kwargs",
        kwargs,
        "--dataset",
        "folder",
        "--data-root",
        root,
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--num-workers",
        "1",
        "--backend",
        "torchvision",
        "--output-dir",
        str(tmp_path / "run"),
        "--no-progress",
        "--knn-images",
        "20",
        "--eval-protocols",
        "knn",
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "completed: 3 steps, 1 epochs" in done.stdout
    knn_row = [line.split() for line in done.stdout.splitlines() if line.startswith("knn ")]
    assert len(knn_row) == 1 and all(0 <= float(v) <= 1 for v in knn_row[0][1:])  # pretrained, random init
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert rows[-1]["knn_acc"] != ""  # the monitor ran at the end of the epoch


def test_online_knn_monitor_is_logged_plotted_and_measures_the_current_encoder(tmp_path):
    cfg = tiny_config(tmp_path, "simclr", knn_every=3, knn_images=40, max_steps=6, tensorboard=True)
    result = train(cfg)
    assert [step for step, _ in result.knn] == [3, 6]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    logged = {int(r["step"]): float(r["knn_acc"]) for r in rows if r["knn_acc"]}
    assert logged == pytest.approx(dict(result.knn), abs=1e-4)
    # the last value is the kNN accuracy of the encoder as trained (eval mode; training mode restored)
    from csl_ext.data import load_dataset

    assert result.method.training
    labelled = load_dataset("digits", "train", image_size=16)
    again = KnnMonitor(labelled, 40, cfg.seed)(result.method, torch.device("cpu"))
    assert again == pytest.approx(result.knn[-1][1], abs=1e-6)
    assert (tmp_path / "loss.png").exists() and list((tmp_path / "tensorboard").glob("events.*"))


def test_in_memory_datasets_are_read_through_a_view_not_copied():
    from csl_ext.augment import make_augmentation
    from csl_ext.data import load_dataset
    from csl_ext.train.batches import PretrainBatches

    data = load_dataset("digits", "train", image_size=16)
    batches = PretrainBatches(
        data,
        make_augmentation("simclr", 16, backend="torchvision"),
        local_batch=8,
        rank=0,
        world_size=1,
        num_workers=0,
        device=torch.device("cpu"),
        seed=0,
        with_labels=True,
        subset=100,
    )
    images = batches._input["images"]  # N x H x W x 3, as the loaders take it
    assert images.shape == (100, 16, 16, 3) and np.shares_memory(images, data.images.numpy())
    views, labels, sample_ids = next(batches.epoch(0))
    assert [v.shape for v in views] == [(8, 3, 16, 16)] * 2 and labels.shape == sample_ids.shape == (8,)
