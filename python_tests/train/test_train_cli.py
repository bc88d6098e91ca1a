"""csl-train end to end on a tiny run: trains, then evaluates beside a
random-init encoder; its options are TrainConfig's fields."""

import json

from conftest import TINY

from csl_ext.cli import main


def test_cli_trains_then_evaluates(tmp_path, capsys):
    argv = [
        "--method",
        "simclr",
        "--method-kwargs",
        json.dumps(TINY["simclr"]),
        "--dataset",
        "digits",
        "--image-size",
        "16",
        "--subset",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--num-workers",
        "0",
        "--backend",
        "torchvision",
        "--output-dir",
        str(tmp_path),
        "--no-progress",
        "--eval-protocols",
        "knn",
    ]  # the cheapest protocol: this tests the wiring
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "completed: 4 steps, 1 epochs" in out
    assert "pretrained" in out and "random init" in out and "\nknn " in out
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "loss.png").exists()


def test_digits_runs_use_the_digit_safe_augmentation(tmp_path):
    """csl-train on digits defaults to AUGMENT_OVERRIDES (no flips); an
    explicit --augment-kwargs replaces it, and both reach the loader."""
    from csl_ext.data.digits import AUGMENT_OVERRIDES

    base = [
        "--method",
        "simclr",
        "--method-kwargs",
        json.dumps(TINY["simclr"]),
        "--batch-size",
        "16",
        "--subset",
        "32",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--backend",
        "torchvision",
        "--no-progress",
        "--no-eval",
    ]
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


def test_every_train_config_field_has_an_option_and_reaches_the_config():
    """config_from_args is built from TrainConfig's fields: a new field without an
    option fails here, and each option's value lands in its field."""
    import dataclasses

    from csl_ext.cli import build_parser, config_from_args
    from csl_ext.train import TrainConfig

    args = build_parser().parse_args([])
    missing = [f.name for f in dataclasses.fields(TrainConfig) if not hasattr(args, f.name)]
    assert not missing, f"TrainConfig fields without a csl-train option: {missing}"
    args = build_parser().parse_args(
        [
            "--dataset",
            "folder",
            "--knn-every",
            "7",
            "--knn-images",
            "0",
            "--skip-bad-images",
            "--no-progress",
            "--no-tensorboard",
            "--no-online-probe",
            "--max-bad-steps",
            "4",
            "--probe-lr",
            "0.01",
            "--augment-kwargs",
            "{}",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.dataset, cfg.knn_every, cfg.knn_images, cfg.skip_bad_images) == ("folder", 7, 0, True)
    assert (cfg.progress, cfg.tensorboard, cfg.online_probe, cfg.max_bad_steps, cfg.probe_lr) == (
        False,
        False,
        False,
        4,
        0.01,
    )


def test_example_kwargs_are_merged_under_the_command_line_ones(tmp_path):
    """run_example: --method-kwargs overrides only the keys it names."""
    import torch

    from csl_ext.train.example import run_example

    example = dict(TINY["simclr"], proj_dim=8)
    argv = [
        "--method-kwargs",
        '{"proj_dim": 4}',
        "--subset",
        "16",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--image-size",
        "16",
        "--num-workers",
        "0",
        "--backend",
        "torchvision",
        "--no-progress",
        "--no-eval",
        "--knn-images",
        "0",
        "--output-dir",
        str(tmp_path),
    ]
    assert run_example("simclr", example, argv) == 0
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["method_kwargs"]
    assert saved["proj_dim"] == 4 and saved["hidden_dim"] == example["hidden_dim"] and saved["width"] == 4
