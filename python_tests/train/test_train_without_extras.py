"""`pip install .` without the [train] extra: csl-train still trains and
evaluates. A sitecustomize on PYTHONPATH makes `import tensorboard`,
`import matplotlib` and `import tqdm` fail in the subprocess, as if they were
not installed; the run logs the CSV only, skips the PNG, prints plain
progress lines, and says each once."""

import csv
import os
import subprocess
import sys

from conftest import TINY
from test_cli_errors import ROOT, csl_train

MISSING = ("tensorboard", "matplotlib", "tqdm")


def test_csl_train_runs_without_tensorboard_matplotlib_and_tqdm(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        f"for name in {MISSING!r}:\n"
        "    sys.modules[name] = None  # `import name` now raises ModuleNotFoundError\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    probe = subprocess.run([sys.executable, "-c", "import tqdm"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr  # the shim works

    import json

    out_dir = tmp_path / "run"
    result = subprocess.run(
        csl_train()
        + [
            "--method",
            "simclr",
            "--method-kwargs",
            json.dumps(TINY["simclr"]),
            "--image-size",
            "16",
            "--subset",
            "16",
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--log-every",
            "1",
            "--num-workers",
            "0",
            "--backend",
            "torchvision",
            "--output-dir",
            str(out_dir),
            "--eval-protocols",
            "knn",
        ],  # progress and TensorBoard on, as by default
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "completed: 2 steps, 1 epochs" in result.stdout
    assert "\nknn " in result.stdout  # the evaluation ran too
    with open(out_dir / "log.csv", newline="") as f:
        assert [row["step"] for row in csv.DictReader(f)] == ["1", "2"]
    assert not (out_dir / "tensorboard").exists() and not (out_dir / "loss.png").exists()
    assert result.stderr.count("tensorboard is not installed: logging to log.csv only") == 1
    assert result.stderr.count("matplotlib is not installed: no loss.png") == 1
    assert result.stderr.count("tqdm is not installed: plain progress lines") == 1
    assert "simclr: step 1/2 loss=" in result.stdout and "simclr: step 2/2 loss=" in result.stdout
