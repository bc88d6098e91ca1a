"""csl-train end to end on a tiny run: trains, then evaluates beside a
random-init encoder (or says that csl_ext.eval is missing)."""
import importlib.util
import json

from csl_ext.cli import main
from conftest import TINY


def test_cli_trains_then_evaluates(tmp_path, capsys):
    argv = ["--method", "simclr", "--method-kwargs", json.dumps(TINY["simclr"]), "--dataset", "digits",
            "--image-size", "16", "--subset", "32", "--epochs", "1", "--batch-size", "8", "--num-workers", "0",
            "--backend", "torchvision", "--output-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "completed: 4 steps, 1 epochs" in out
    if importlib.util.find_spec("csl_ext.eval") is None:
        assert "skipping the evaluation" in out
    else:
        assert "pretrained" in out and "random init" in out
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "loss.png").exists()
