"""Smoke runs of the benchmark scripts at tiny sizes: they run, and the tables,
JSON and plots they write hold what they say (no timing is asserted)."""

import importlib
import json
import math
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the benchmarks/ scripts are run from the repository root
    sys.path.insert(0, ROOT)

import csl_ext  # noqa: E402
from benchmarks import gpu_suite, patchify_ratios, run_all, scaling, train_step  # noqa: E402
from benchmarks.timing import interleaved_times, median_ratio  # noqa: E402

needs_extension = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(path):
    with open(path) as f:
        return json.load(f)


def test_interleaved_times_runs_every_variant_in_turn():
    order = []
    times = interleaved_times(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3, warmup=1, threads={"a": 1, "b": 2}
    )
    assert order == ["a", "b"] * 4  # one warm-up round, then three timed ones
    assert [len(t) for t in times.values()] == [3, 3]
    assert median_ratio({"x": [2.0, 6.0, 3.0], "y": [1.0, 2.0, 2.0]}, "x", "y") == 2.0  # ratios 2, 3, 1.5


@needs_extension
def test_patchify_ratios(tmp_path):
    rows = patchify_ratios.main(
        ["--batch", "2", "--size", "20", "--patch", "6", "--stride", "2", "--rounds", "1", "--out", str(tmp_path)]
    )
    got = {(r["dtype"], r["variant"]) for r in rows}
    assert got == {
        ("float32", "patchify"),
        ("float32", "unfold"),
        ("float32", "adjoint"),
        ("uint8", "patchify"),
        ("uint8", "unfold"),
    }
    for row in rows:
        for key in ("ratio_1", "ratio_2", "threads_2_over_1", "ms_1", "clone_ms_2"):
            assert math.isfinite(row[key]) and row[key] > 0
    assert _load(tmp_path / "patchify.json")["rows"] == rows
    table = (tmp_path / "patchify.md").read_text()
    assert "2 x 3 x 20 x 20, patch 6, stride 2" in table and "| uint8 | patchify |" in table


def test_scaling_tables_and_plots(tmp_path):
    result = scaling.main(
        ["--nt-xent-sizes", "16", "32", "--amdim-sizes", "3", "--rounds", "1", "--out", str(tmp_path)]
    )
    variants = {(r["size"], r["variant"]) for r in result["nt_xent"]}
    assert variants == {(n, v) for n in (16, 32) for v in ("csl_ext", "lightly", "materialised", "three_gemms")}
    assert {r["variant"] for r in result["amdim_nce"]} == {"csl_ext", "materialised", "three_gemms"}
    # the materialised NT-Xent holds its 2N x 2N logits: its peak covers them
    materialised = next(r for r in result["nt_xent"] if r == {**r, "size": 32, "variant": "materialised"})
    assert materialised["peak_MiB"] * 2**20 >= 32 * 32 * 4
    for name in ("nt_xent_scaling.png", "amdim_nce_scaling.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    table = (tmp_path / "scaling.md").read_text()
    assert "| 2N | csl_ext ms (MiB) | lightly ms (MiB)" in table and "| B | csl_ext ms (MiB)" in table
    assert _load(tmp_path / "scaling.json")["nt_xent"] == result["nt_xent"]


def test_scaling_caps_the_materialised_variants(tmp_path):
    result = scaling.main(
        [
            "--nt-xent-sizes",
            "64",
            "--amdim-sizes",
            "4",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
            "--max-materialised-mib",
            "0.001",
        ]
    )
    assert {r["variant"] for r in result["nt_xent"] + result["amdim_nce"]} == {"csl_ext"}
    assert "| 64 | " in (tmp_path / "scaling.md").read_text()


def test_train_step_splits_each_step(tmp_path):
    rows = train_step.main(
        [
            "--methods",
            "simclr",
            "cpc_v2",
            "--batch",
            "4",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--workers",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert [(r["method"], r["pipeline"]) for r in rows] == [
        ("simclr", "pytorch"),
        ("simclr", "csl_ext"),
        ("cpc_v2", "pytorch"),
        ("cpc_v2", "csl_ext"),
    ]
    for row in rows:
        phases = [row[f"{p}_s"] for p in train_step.PHASES]
        assert all(t >= 0 for t in phases) and row["encoder_forward_s"] > 0 and row["encoder_backward_s"] > 0
        assert sum(phases) == pytest.approx(row["step_s"], rel=1e-6)  # the phases partition the step
        assert row["images_per_s"] == pytest.approx(4 / row["step_s"])
    assert {r["augment_backend"] for r in rows if r["pipeline"] == "pytorch"} == {"torchvision"}
    table = (tmp_path / "train_step.md").read_text()
    assert "| simclr | pytorch (torchvision) |" in table and "1.00x" in table
    assert _load(tmp_path / "train_step.json")["rows"] == rows


@needs_extension
def test_pure_pytorch_ops_switches_the_losses_to_their_references():
    from csl_ext.losses import nt_xent

    lse_module = importlib.import_module("csl_ext.ops.info_nce_lse")  # the package attribute is the function

    z1, z2 = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    with train_step.pure_pytorch_ops():
        assert not lse_module.has_extension()
        reference = nt_xent(z1, z2, 0.5)
    assert lse_module.has_extension()
    torch.testing.assert_close(reference, nt_xent(z1, z2, 0.5))
    torch.testing.assert_close(reference, scaling.materialised_nt_xent(z1, z2, 0.5))


@needs_extension
def test_run_all_quick_writes_every_table(tmp_path):
    text = run_all.main(["--out", str(tmp_path), "--quick"])
    assert (tmp_path / "README.md").read_text() == text
    for section in (
        "## patchify_ratios",
        "## scaling",
        "## train_step",
        "| float32 | patchify |",
        "| 2N | csl_ext",
        "| simclr | csl_ext",
    ):
        assert section in text
    assert "pytest-benchmark suites" not in text  # --quick skips them
    assert (tmp_path / "nt_xent_scaling.png").read_bytes()[:8] == PNG_MAGIC


def test_gpu_suite_cpu_mode_writes_its_report(tmp_path):
    test = "python_tests/ops/test_patchify.py::test_cuda_graph_capture"
    report = gpu_suite.main(
        ["--cpu", "--out", str(tmp_path), "--tests", test, "--only", "cuda_tests", "patchify_ratios"]
    )
    assert [(s["step"], s["rc"]) for s in report["steps"]] == [("cuda_tests", 0), ("patchify_ratios", 0)]
    assert report["cuda_tests"]["tests"] == 1  # collected; skipped here (no device), run on a GPU
    assert report["cuda_tests"]["skipped"] == (0 if torch.cuda.is_available() else 1)
    assert _load(tmp_path / "report.json") == report
    markdown = (tmp_path / "report.md").read_text()
    assert "| cuda_tests | 0 |" in markdown and "## patchify" in markdown and "| float32 | patchify |" in markdown


def test_gpu_suite_refuses_to_run_without_a_device():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit):
        gpu_suite.main(["--out", os.devnull])


def test_gpu_suite_shell_entry_point():
    script = os.path.join(ROOT, "benchmarks", "gpu_suite.sh")
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", script]).returncode == 0  # parses
    assert "python -m benchmarks.gpu_suite" in open(script).read()
