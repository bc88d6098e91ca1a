"""Images per second of each DALI augmentation pipeline against its torchvision twin.

Both read the same in-memory uint8 images and use the same parallelism: DALI with
2 CPU threads, the twin in a DataLoader with 2 worker processes. One round is one
epoch; the loaders (and DataLoader workers) are built once, before the rounds.

Run (the table is printed at the end and written to .benchmarks/augment_table.md):

    PYTHONPATH=. pytest benchmarks/test_bench_augment.py --benchmark-only -q -s

Choose sizes/methods with -k, e.g. ``-k "simclr and 32"``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from csl_ext.augment import make_augmentation

pytest.importorskip("nvidia.dali")

WORKERS = 2
METHODS = ["simclr", "moco_v2", "byol", "amdim", "cpc_v2", "yadim", "eval"]
# (output size, input side, images per epoch, batch size): 32 px from 32 px arrays
# (CIFAR-like), 224 px from 256 px arrays (ImageNet-like)
SIZES = {32: (32, 4096, 256), 224: (256, 256, 64)}
RESULTS: dict = {}


def make_data(n: int, side: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour images (n, side, side, 3) uint8: upsampled noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, side, side, 3), np.uint8)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        out[i] = np.asarray(coarse.resize((side, side), Image.BILINEAR))
    return out


@pytest.fixture(scope="module")
def datasets():
    return {size: make_data(n, side) for size, (side, n, _) in SIZES.items()}


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if not RESULTS:
        return
    lines = ["| method | size | DALI img/s | torchvision img/s | DALI / torchvision |", "|---|---|---|---|---|"]
    for method, size in sorted({(m, s) for m, s, _ in RESULTS}, key=lambda k: (k[1], METHODS.index(k[0]))):
        d, t = RESULTS.get((method, size, "dali")), RESULTS.get((method, size, "torchvision"))
        ratio = f"{d / t:.2f}x" if d and t else "-"
        lines.append(f"| {method} | {size} | {d or 0:,.0f} | {t or 0:,.0f} | {ratio} |")
    table = "\n".join(lines)
    print(
        f"\n\nAugmentation throughput, {WORKERS} DALI threads vs {WORKERS} DataLoader workers, "
        f"{os.cpu_count()} CPUs\n{table}"
    )
    os.makedirs(".benchmarks", exist_ok=True)
    with open(os.path.join(".benchmarks", "augment_table.md"), "w") as f:
        f.write(table + "\n")


@pytest.mark.parametrize("backend", ["dali", "torchvision"])
@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("method", METHODS)
def test_throughput(benchmark, datasets, method, size, backend):
    images = datasets[size]
    _, n, batch = SIZES[size]
    aug = make_augmentation(method, size, backend=backend)
    loader = aug.loader(images, np.zeros(n, np.int64), batch_size=batch, num_workers=WORKERS, device="cpu", seed=0)

    def epoch():
        seen = 0
        for b in loader:
            seen += b[0].shape[0]
        return seen

    assert epoch() == n  # warm-up: pipeline build, worker start
    t0 = time.perf_counter()
    benchmark.pedantic(epoch, rounds=3, iterations=1)
    per_epoch = (time.perf_counter() - t0) / 3
    # benchmark.stats is absent under --benchmark-disable; fall back to our own clock
    stats = getattr(benchmark, "stats", None)
    median = stats.stats.median if stats is not None else per_epoch
    ips = n / median
    benchmark.extra_info.update(images_per_second=ips, images_per_epoch=n, workers=WORKERS)
    RESULTS[(method, size, backend)] = ips


@pytest.mark.parametrize("method, size", [("simclr", 32)])
def test_paired_ratio(benchmark, datasets, method, size):
    """Interleaved epochs (torchvision untimed by pytest-benchmark in setup, timed by
    hand; DALI timed by pytest-benchmark) so that load drift on shared machines hits
    both backends alike; the ratio of medians goes into extra_info. Target for
    SimCLR at 32 px: >= 3x."""
    images = datasets[size]
    _, n, batch = SIZES[size]
    loaders = {
        be: make_augmentation(method, size, backend=be).loader(
            images, batch_size=batch, num_workers=WORKERS, device="cpu", seed=0
        )
        for be in ("dali", "torchvision")
    }
    tv_times = []

    def epoch(be):
        return sum(b[0].shape[0] for b in loaders[be])

    def setup():
        t0 = time.perf_counter()
        epoch("torchvision")
        tv_times.append(time.perf_counter() - t0)

    epoch("dali")  # warm-up: pipeline build, worker start
    epoch("torchvision")
    dali_times = []

    def timed_dali():
        t0 = time.perf_counter()
        epoch("dali")
        dali_times.append(time.perf_counter() - t0)

    benchmark.pedantic(timed_dali, setup=setup, rounds=5, iterations=1)
    ratio = float(np.median(tv_times) / np.median(dali_times))
    benchmark.extra_info.update(
        dali_ips=n / np.median(dali_times), torchvision_ips=n / np.median(tv_times), ratio=ratio
    )
    print(
        f"\n{method} {size}px paired: DALI {n / np.median(dali_times):,.0f} img/s, "
        f"torchvision {n / np.median(tv_times):,.0f} img/s, ratio {ratio:.2f}x"
    )
