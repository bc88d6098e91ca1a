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


class _CreatesAFileWhenUnpickled:
    """What a malicious checkpoint carries: unpickling calls open(path, "w")."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_file_carrying_pickled_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "created_by_the_checkpoint"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(2)}, "step": 1, "payload": _CreatesAFileWhenUnpickled(str(marker))}, path)
    with pytest.raises(CheckpointError, match=r"refused: it carries pickled code \(io.open\).*nothing in it was run"):
        load_checkpoint(str(path), require_keys=())
    assert not marker.exists()
    # the payload is live: an unsafe load runs it (what load_checkpoint prevents)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_rng_states_are_plain_data_and_older_numpy_array_states_still_load(tmp_path):
    state = rng_state()
    assert isinstance(state["numpy"]["state"]["key"], torch.Tensor)
    expected = (torch.rand(2), __import__("numpy").random.rand(3))
    path = tmp_path / "rng.pt"
    save_checkpoint(str(path), {"rng": state})
    # nothing but tensors and plain data: loads with torch's own defaults
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    set_rng_state(load_checkpoint(str(path), require_keys=())["rng"])
    assert torch.equal(torch.rand(2), expected[0]) and (__import__("numpy").random.rand(3) == expected[1]).all()
    # a checkpoint written before holds numpy's legacy tuple with a uint32 array
    legacy = dict(state, numpy=__import__("numpy").random.get_state())
    expected = __import__("numpy").random.rand(3)
    save_checkpoint(str(path), {"rng": legacy})
    set_rng_state(load_checkpoint(str(path), require_keys=())["rng"])
    assert (__import__("numpy").random.rand(3) == expected).all()
