"""Atomic checkpoints: a crash mid-write keeps the previous file intact."""
import os

import pytest
import torch

from csl_ext.train.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def _files(d):
    return sorted(os.listdir(d))


def test_round_trip(tmp_path):
    path = tmp_path / "ckpt.pt"
    state = {"model": {"w": torch.arange(5.0)}, "step": 7}
    save_checkpoint(str(path), state)
    back = load_checkpoint(str(path), require_keys=("model", "step"))
    assert back["step"] == 7 and torch.equal(back["model"]["w"], state["model"]["w"])
    assert _files(tmp_path) == ["ckpt.pt"]  # no temporary file left behind


def test_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(str(path), {"step": 1, "w": torch.ones(100)})
    before = path.read_bytes()

    real_save = torch.save

    def crash_after_some_bytes(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # the bytes reach the temporary file ...
        f.flush()
        raise OSError("disk full")  # ... then the write fails, as a crash would

    monkeypatch.setattr(torch, "save", crash_after_some_bytes)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(str(path), {"step": 2, "w": torch.zeros(100)})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert load_checkpoint(str(path), require_keys=())["step"] == 1
    assert _files(tmp_path) == ["ckpt.pt"]


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(str(tmp_path / "nope.pt"))
    path = tmp_path / "torn.pt"
    save_checkpoint(str(path), {"w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # what a non-atomic writer leaves after a crash
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(str(path), require_keys=())
    save_checkpoint(str(path), {"w": torch.ones(1)})
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(str(path))


def test_rng_states_restore():
    state = rng_state()
    a = (torch.rand(3), __import__("numpy").random.rand(3), __import__("random").random())
    set_rng_state(state)
    b = (torch.rand(3), __import__("numpy").random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]
