"""User errors on the command line: one line `<prog>: error: ...`, exit
status 2, no traceback; bugs keep their traceback. The real commands run in
subprocesses (the installed csl-train console script when there is one)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from csl_ext._cli_errors import closest, run_cli

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
}
ENV.pop("CSL_EXT_TRACEBACK", None)


def csl_train() -> list[str]:
    """The console script pip installed beside this python, else the module."""
    script = Path(sys.executable).parent / "csl-train"
    found = str(script) if script.exists() else shutil.which("csl-train")
    return [found] if found else [sys.executable, "-m", "csl_ext.cli"]


def run(command: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV, cwd=cwd)


def assert_one_line_error(result, prog: str, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


FAST = ["--no-progress", "--max-steps", "1", "--backend", "torchvision"]  # every error comes before step 1


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--method", "simclr2"], ["method must be one of", "'byol'", "did you mean 'simclr'?"]),
        (
            ["--method", "simclr", "--method-kwargs", '{"tempreature": 0.5}'],
            ["simclr has no keyword 'tempreature'", "did you mean 'temperature'?", "'base_lr'"],
        ),
        (["--dataset", "cifar10", "--data-root", "missing_dir"], ["data_root 'missing_dir' does not exist"]),
        (["--eval-protocols", "mlp,svm"], ["protocols must be a non-empty subset of", "'svm'"]),
    ],
)
def test_csl_train_user_errors(tmp_path, args, fragments):
    assert_one_line_error(
        run(csl_train() + args + FAST + ["--output-dir", str(tmp_path / "run")], tmp_path), "csl-train", *fragments
    )


def test_csl_train_resume_from_a_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_text("not a checkpoint\n")
    result = run(csl_train() + ["--resume", "--output-dir", str(tmp_path)] + FAST, tmp_path)
    assert_one_line_error(result, "csl-train", "checkpoint.pt", "not a torch.save file")


def test_evaluate_checkpoint_user_errors(tmp_path):
    prog = "python -m csl_ext.eval.evaluate_checkpoint"
    command = [sys.executable, "-m", "csl_ext.eval.evaluate_checkpoint"]
    assert_one_line_error(run(command + ["nope.pt"], tmp_path), prog, "checkpoint not found", "nope.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    assert_one_line_error(run(command + ["other.pt"], tmp_path), prog, "not a csl_ext checkpoint", "'method'")


def test_run_cli_turns_only_user_errors_into_one_line(capsys):
    def user_error():
        raise ValueError("batch_size must be positive,\n got 0")

    with pytest.raises(SystemExit) as exit_info:
        run_cli("csl-x", user_error)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "csl-x: error: batch_size must be positive, got 0\n"

    def bug():
        raise TypeError("unsupported operand")

    with pytest.raises(TypeError, match="unsupported operand"):  # a bug keeps its traceback
        run_cli("csl-x", bug)
    assert run_cli("csl-x", lambda a, b=0: a + b, 1, b=2) == 3


def test_closest_suggests_only_near_names():
    assert closest("tempreature", ["temperature", "width"]) == " (did you mean 'temperature'?)"
    assert closest("zzz", ["temperature", "width"]) == ""


def test_build_method_checks_keywords_against_the_class_signature():
    from csl_ext.methods import build_method
    from csl_ext.methods.registry import METHODS, check_method_kwargs

    with pytest.raises(ValueError, match=r"moco_v2 has no keyword 'queue' \(did you mean 'queue_size'\?\)"):
        build_method("moco_v2", queue=128)
    with pytest.raises(ValueError, match=r"did you mean 'byol'\?"):
        build_method("bypl")
    check_method_kwargs("simclr", {"temperature": 0.2, "num_classes": 10})  # every real keyword passes

    class TakesAnyKeyword:  # a class that checks its own **kwargs is left to do so
        def __init__(self, **kwargs):
            pass

    METHODS["_any_keyword"] = TakesAnyKeyword
    try:
        check_method_kwargs("_any_keyword", {"whatever": 1})
    finally:
        del METHODS["_any_keyword"]
