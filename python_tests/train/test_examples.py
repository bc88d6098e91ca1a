"""Every examples/train_<method>.py runs as written, with its own defaults
(method kwargs, batch size, image size, digits): one optimiser step, then a
checkpoint. The full runs and their accuracies are in the README."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("train_*.py"))
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_there_is_one_example_per_method():
    from csl_ext.methods import METHODS

    names = {p.stem.removeprefix("train_") for p in EXAMPLES}
    # "composed" is csl_ext.methods.compose's, not a paper method
    assert names == {"simclr", "moco", "byol", "amdim", "cpc", "yadim"}
    assert len(set(METHODS) - {"composed"}) == len(names)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_one_step_with_its_defaults(example, tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = [
        str(example),
        "--max-steps",
        "1",
        "--no-eval",
        "--no-progress",
        "--num-workers",
        "0",
        "--output-dir",
        str(out),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(example), run_name="__main__")
    assert exit_info.value.code in (0, None)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert checkpoint["step"] == 1
    example_kwargs = runpy.run_path(str(example))["KWARGS"]
    assert checkpoint["method_kwargs"].items() >= example_kwargs.items()
