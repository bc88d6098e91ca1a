"""benchmarks/quality.py --quick runs the whole comparison (csl_ext trainer,
random-init twin, lightly twin, the three protocols, kNN curves) in seconds;
its CSV, table and curves agree with each other."""

import csv
import importlib.util
import re
import statistics
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCRIPT = Path(__file__).parents[2] / "benchmarks" / "quality.py"


def load_quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    quality = load_quality()
    quality.main(["--quick", "--methods", "simclr,byol", "--seeds", "2", "--out-dir", str(out)])
    return out


def test_results_csv_has_every_cell(quick_run):
    rows = read(quick_run / "results.csv")
    cells = {(r["method"], r["impl"], r["seed"], r["protocol"]) for r in rows}
    expected = {
        (m, i, s, p)
        for m in ("simclr", "byol")
        for i in ("csl_ext", "random_init", "random_init_bn", "lightly")
        for s in ("0", "1")
        for p in ("mlp", "linear", "knn")
    }
    assert cells == expected and len(rows) == len(expected)
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    assert {(r["steps"], r["batch_size"]) for r in rows} == {("2", "32")}  # --quick: 64 images, batch 32, 2 steps
    # the random-init twin of a seed is the encoder both trainings start from: one per seed
    for seed in ("0", "1"):
        by_method = {
            m: [r["accuracy"] for r in rows if r["impl"] == "random_init" and r["seed"] == seed and r["method"] == m]
            for m in ("simclr", "byol")
        }
        assert len(by_method["simclr"]) == 3


def test_table_is_the_mean_and_std_of_the_csv(quick_run):
    rows = read(quick_run / "results.csv")
    table = (quick_run / "quality.md").read_text()
    assert "--quick --methods simclr,byol" in table
    for method in ("simclr", "byol"):
        for impl in ("csl_ext", "random_init", "random_init_bn", "lightly"):
            line = next(row for row in table.splitlines() if row.startswith(f"| {method} |") and f"| {impl} |" in row)
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[3] == "2"  # seeds
            for col, protocol in zip(cells[4:7], ("mlp", "linear", "knn")):
                accs = [
                    float(r["accuracy"])
                    for r in rows
                    if (r["method"], r["impl"], r["protocol"]) == (method, impl, protocol)
                ]
                mean, std = (float(v) for v in re.findall(r"[0-9.]+", col))
                assert mean == pytest.approx(statistics.fmean(accs), abs=6e-4)
                assert std == pytest.approx(statistics.stdev(accs), abs=6e-4)


def test_verdicts_follow_the_numbers(quick_run):
    quality = load_quality()
    summary = quality.summarise(read(quick_run / "results.csv"))
    for method in ("simclr", "byol"):
        csl, rnd = summary[(method, "csl_ext")], summary[(method, "random_init")]
        v = quality.verdicts(summary, method)
        assert v["beats_random_init"] == (csl["linear"][0] > rnd["linear"][0] and csl["knn"][0] > rnd["knn"][0])
        line = next(
            line
            for line in (quick_run / "quality.md").read_text().splitlines()
            if line.startswith(f"| {method} |") and "| csl_ext |" in line
        )
        assert line.rstrip(" |").endswith("yes" if v["matches_lightly"] else "**no**")
    # a made-up summary: above random init on both, and one std below lightly on MLP only
    fake = {
        ("m", "csl_ext"): {"mlp": (0.80, 0.01, 3), "linear": (0.9, 0.0, 3), "knn": (0.9, 0.0, 3)},
        ("m", "random_init"): {"mlp": (0.95, 0.0, 3), "linear": (0.8, 0.0, 3), "knn": (0.8, 0.0, 3)},
        ("m", "random_init_bn"): {"mlp": (0.7, 0.0, 3), "linear": (0.7, 0.0, 3), "knn": (0.95, 0.0, 3)},
        ("m", "lightly"): {"mlp": (0.85, 0.02, 3), "linear": (0.9, 0.0, 3), "knn": (0.9, 0.0, 3)},
    }
    assert quality.verdicts(fake, "m") == {
        "beats_random_init": True,
        "beats_random_init_bn": False,  # below it on kNN
        "matches_lightly": False,
    }


@pytest.mark.parametrize("method", ["moco_v2", "byol"])
def test_bn_statistics_twin_changes_only_the_bn_statistics(method):
    """The twin is the random-init method with the running statistics of the
    training views: every parameter equal, every BN buffer moved from 0 / 1."""
    import numpy as np
    import torch

    quality = load_quality()
    kwargs = dict(quality.example_settings(method)[0], **quality.QUICK_KWARGS[method])
    images = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    twin = quality.bn_statistics_twin(method, kwargs, {}, images, 32, 3, 16, "torchvision")
    torch.manual_seed(3)
    init = quality.build_method(method, **kwargs)
    assert not twin.training
    for (name, p), q in zip(twin.named_parameters(), init.parameters()):
        # momentum copies are averaged with equal weights: equal up to rounding
        assert torch.equal(p, q) if name.startswith("encoder.") else torch.allclose(p, q, atol=1e-6), name
    bns = [m for m in twin.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns
    for bn in bns:
        # one pass per step (MoCo's queries), or one per view (BYOL)
        assert int(bn.num_batches_tracked) == {"moco_v2": 1, "byol": 2}[method] * quality.BN_TWIN_STEPS
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


def test_knn_curves_start_at_the_random_init_and_end_at_the_result(quick_run):
    rows = read(quick_run / "results.csv")
    curves = read(quick_run / "curves.csv")
    for method in ("simclr", "byol"):
        for impl in ("csl_ext", "lightly"):
            for seed in ("0", "1"):
                pts = {
                    int(c["step"]): float(c["knn"])
                    for c in curves
                    if (c["method"], c["impl"], c["seed"]) == (method, impl, seed)
                }
                assert min(pts) == 0 and max(pts) == 2
                knn = {
                    r["impl"]: float(r["accuracy"])
                    for r in rows
                    if (r["method"], r["seed"], r["protocol"]) == (method, seed, "knn")
                }
                assert pts[0] == pytest.approx(knn["random_init"], abs=1e-5)
                assert pts[2] == pytest.approx(knn[impl], abs=1e-5)
    assert (quick_run / "knn_vs_steps.png").stat().st_size > 1000


def test_example_settings_are_read_from_the_example():
    kwargs, defaults = load_quality().example_settings("moco_v2")
    assert kwargs["bn_splits"] == 8 and defaults == {"epochs": 80, "batch_size": 128, "image_size": 32}


def test_bad_arguments_are_rejected(tmp_path):
    quality = load_quality()
    with pytest.raises(SystemExit, match="--methods"):
        quality.main(["--methods", "simsiam", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--steps"):
        quality.main(["--methods", "simclr", "--steps", "0", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--method-kwargs / --batch-size for byol: predictor_lr_scale must be"):
        quality.main(
            [
                "--quick",
                "--methods",
                "byol",
                "--method-kwargs",
                '{"byol": {"predictor_lr_scale": 0}}',
                "--out-dir",
                str(tmp_path),
            ]
        )
    with pytest.raises(SystemExit, match=r"for simclr: simclr has no keyword .temprature. \(did you mean"):
        quality.main(
            [
                "--quick",
                "--methods",
                "simclr",
                "--method-kwargs",
                '{"simclr": {"temprature": 0.1}}',
                "--out-dir",
                str(tmp_path),
            ]
        )


def test_baselines_only_scores_the_two_untrained_twins(tmp_path):
    load_quality().main(
        ["--quick", "--methods", "moco_v2", "--seeds", "1", "--baselines-only", "--out-dir", str(tmp_path)]
    )
    rows = read(tmp_path / "results.csv")
    assert {(r["impl"], r["protocol"]) for r in rows} == {
        (i, p) for i in ("random_init", "random_init_bn") for p in ("mlp", "linear", "knn")
    }
    assert "| moco_v2 |" in (tmp_path / "quality.md").read_text() and not (tmp_path / "curves.csv").exists()


def test_bn_statistics_twin_of_a_method_without_batch_norm_is_its_random_init():
    import numpy as np
    import torch

    quality = load_quality()
    kwargs = dict(quality.example_settings("cpc_v2")[0], **quality.QUICK_KWARGS["cpc_v2"])
    images = np.zeros((8, 32, 32, 3), dtype=np.uint8)  # never read: there is no statistic to gather
    twin = quality.bn_statistics_twin("cpc_v2", kwargs, {}, images, 4, 0, 32, "torchvision")
    torch.manual_seed(0)
    init = quality.build_method("cpc_v2", **kwargs)
    assert not twin.training
    for (name, a), b in zip(twin.state_dict().items(), init.state_dict().values()):
        assert torch.equal(a, b), name
