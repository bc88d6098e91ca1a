"""csl-train end to end on a tiny run: trains, then evaluates beside a
random-init encoder (or says that csl_ext.eval is missing)."""
import importlib.util
import json

from csl_ext.cli import main
from conftest import TINY


def test_cli_trains_then_evaluates(tmp_path, capsys):
    argv = ["--method", "simclr", "--method-kwargs", json.dumps(TINY["simclr"]), "--dataset", "digits",
            "--image-size", "16", "--subset", "32", "--epochs", "1", "--batch-size", "8", "--num-workers", "0",
            "--backend", "torchvision", "--output-dir", str(tmp_path), "--no-progress",
            "--eval-protocols", "knn"]  # the cheapest protocol: this tests the wiring
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "completed: 4 steps, 1 epochs" in out
    if importlib.util.find_spec("csl_ext.eval") is None:
        assert "skipping the evaluation" in out
    else:
        assert "pretrained" in out and "random init" in out and "\nknn " in out
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "loss.png").exists()


def test_digits_runs_use_the_digit_safe_augmentation(tmp_path):
    """csl-train on digits defaults to AUGMENT_OVERRIDES (no flips); an
    explicit --augment-kwargs replaces it, and both reach the loader."""
    from csl_ext.data.digits import AUGMENT_OVERRIDES

    base = ["--method", "simclr", "--method-kwargs", '{"arch": "resnet18", "width": 4, "hidden_dim": 16, "proj_dim": 8}',
            "--batch-size", "16", "--subset", "32", "--epochs", "1", "--max-steps", "1", "--backend", "torchvision",
            "--no-progress", "--no-eval"]
    seen = []
    import csl_ext.train.trainer as trainer_module

    real = trainer_module.make_augmentation

    def recording(method, size, **kwargs):
        seen.append(kwargs)
        return real(method, size, **kwargs)

    trainer_module.make_augmentation = recording
    try:
        assert main(base + ["--output-dir", str(tmp_path / "a")]) == 0
        assert main(base + ["--output-dir", str(tmp_path / "b"), "--augment-kwargs", '{"gray_p": 0.0}']) == 0
    finally:
        trainer_module.make_augmentation = real
    assert {k: seen[0][k] for k in AUGMENT_OVERRIDES} == AUGMENT_OVERRIDES
    assert seen[1]["gray_p"] == 0.0 and "flip_p" not in seen[1]
