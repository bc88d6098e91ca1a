"""Pretraining from JPEG folders: memory does not grow with the folder, and decode +
augment throughput of DALI (CPU here) against the torchvision DataLoader twin.

1. Peak resident memory of a 3-step ``csl-train`` run (SimCLR, 128 px, batch 16, one
   process: DALI's threads or no DataLoader workers, so that one process's high-water
   mark is the whole run) on a folder of N JPEG files and on one of 4N; measured by
   the kernel (``os.wait4``'s ru_maxrss of the child). Materialising the images would
   cost 3N x 128 x 128 x 3 bytes more (N = 1500: 221 MB); the target is < 200 MB.
2. Images per second of one epoch over a JPEG folder through the trainer's loaders,
   2 DALI threads against 2 DataLoader workers, SimCLR's augmentation at 32 px (36 px
   JPEGs, CIFAR-like) and 128 px (ImageNet-like 150-200 px JPEGs). Epochs of the two
   backends are interleaved so that load drift on a shared machine hits both alike;
   the ratio of the medians is reported.

Run (tables printed at the end and written to .benchmarks/folder_table.md):

    PYTHONPATH=. pytest benchmarks/test_bench_folder.py --benchmark-only -q -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from csl_ext.augment import make_augmentation
from csl_ext.data import ImageFolder

pytest.importorskip("nvidia.dali")

WORKERS = 2
RSS_FILES = 1500  # and 4x as many
THROUGHPUT = {32: (36, 36, 1024, 128), 128: (150, 200, 256, 32)}  # size: (min side, max side, files, batch)
RESULTS: dict = {}


def write_jpeg_folder(root: str, n: int, sides: tuple[int, int], classes: int = 10, seed: int = 0) -> str:
    """n smooth random colour JPEGs (quality 90) of sides in [lo, hi] in ``root/train/c<k>/``."""
    rng = np.random.default_rng(seed)
    lo, hi = sides
    for i in range(n):
        folder = os.path.join(root, "train", f"c{i % classes}")
        os.makedirs(folder, exist_ok=True)
        h, w = rng.integers(lo, hi + 1, 2)
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        coarse.resize((int(w), int(h)), Image.BILINEAR).save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)
    return root


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if not RESULTS:
        return
    lines = []
    for backend in ("dali", "torchvision"):
        if ("rss", backend, 1) in RESULTS:
            small, large = RESULTS[("rss", backend, 1)], RESULTS[("rss", backend, 4)]
            lines.append(
                f"| peak RSS, 3 steps 128 px, {backend} | {RSS_FILES} files: {small:.0f} MB | "
                f"{4 * RSS_FILES} files: {large:.0f} MB | +{large - small:.0f} MB |"
            )
    for size in sorted(THROUGHPUT):
        if ("ips", size) in RESULTS:
            d, t = RESULTS[("ips", size)]
            lines.append(
                f"| decode + SimCLR augment, {size} px | DALI {d:,.0f} img/s | torchvision {t:,.0f} img/s "
                f"| {d / t:.2f}x |"
            )
    table = "\n".join(["| measurement | a | b | difference / ratio |", "|---|---|---|---|"] + lines)
    print(f"\n\nJPEG folders, {WORKERS} DALI threads vs {WORKERS} DataLoader workers, {os.cpu_count()} CPUs\n{table}")
    os.makedirs(".benchmarks", exist_ok=True)
    with open(os.path.join(".benchmarks", "folder_table.md"), "w") as f:
        f.write(table + "\n")


@pytest.fixture(scope="module")
def rss_folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("rss")
    return {k: write_jpeg_folder(str(base / f"x{k}"), k * RSS_FILES, (140, 180)) for k in (1, 4)}


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory (MB) of a child process, from the kernel's rusage."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    out, err = child.stdout.read().decode(), child.stderr.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0, err[-2000:]
    assert "max_steps: 3 steps" in out
    return usage.ru_maxrss / 1024  # KiB -> MiB


@pytest.mark.parametrize("backend", ["dali", "torchvision"])
def test_peak_rss_does_not_grow_with_the_number_of_files(benchmark, rss_folders, backend, tmp_path):
    kwargs = json.dumps({"arch": "resnet18", "width": 8, "hidden_dim": 64, "proj_dim": 32})

    def run(k: int) -> float:
        return peak_rss_mb(
            [
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
                rss_folders[k],
                "--image-size",
                "128",
                "--batch-size",
                "16",
                "--max-steps",
                "3",
                "--num-workers",
                "2" if backend == "dali" else "0",
                "--backend",
                backend,
                "--knn-images",
                "0",
                "--no-eval",
                "--no-progress",
                "--no-tensorboard",
                "--output-dir",
                str(tmp_path / str(k)),
            ]
        )

    small = benchmark.pedantic(run, args=(1,), rounds=1, iterations=1)
    large = run(4)
    RESULTS[("rss", backend, 1)], RESULTS[("rss", backend, 4)] = small, large
    benchmark.extra_info.update(peak_rss_mb_n=small, peak_rss_mb_4n=large, files=RSS_FILES)
    assert large - small < 200, f"peak RSS grew by {large - small:.0f} MB with 4x the files"


@pytest.mark.parametrize("size", sorted(THROUGHPUT))
def test_decode_augment_throughput_dali_vs_torchvision(benchmark, size, tmp_path):
    lo, hi, n, batch = THROUGHPUT[size]
    files = ImageFolder(write_jpeg_folder(str(tmp_path), n, (lo, hi)), "train", size)
    cfg = make_augmentation("simclr", size, backend="torchvision").config
    from csl_ext.augment.dali_iterator import DaliLoader
    from csl_ext.augment.torchvision_twins import TorchvisionLoader

    loaders = {
        "dali": DaliLoader(
            cfg, files=files, batch_size=batch, num_threads=WORKERS, device_id=None, seed=0, shard_id=0, num_shards=1
        ),
        "torchvision": TorchvisionLoader(
            cfg, files=files, batch_size=batch, num_workers=WORKERS, device="cpu", seed=0, shard_id=0, num_shards=1
        ),
    }
    times = {"dali": [], "torchvision": []}

    def epoch(backend: str) -> None:
        t0 = time.perf_counter()
        seen = sum(b[0].shape[0] for b in loaders[backend])
        times[backend].append(time.perf_counter() - t0)
        assert seen == n

    torch.set_num_threads(1)
    epoch("dali"), epoch("torchvision")  # warm-up: pipeline build, worker start
    times = {"dali": [], "torchvision": []}
    benchmark.pedantic(epoch, args=("dali",), setup=lambda: epoch("torchvision"), rounds=3, iterations=1)
    d, t = n / np.median(times["dali"]), n / np.median(times["torchvision"])
    RESULTS[("ips", size)] = (d, t)
    benchmark.extra_info.update(dali_ips=d, torchvision_ips=t, ratio=d / t, workers=WORKERS)
