"""Exact resume: 2 epochs in one go == 1 epoch, stop, resume 1 epoch; and a
real SIGTERM mid-epoch writes a checkpoint from which the run continues to
the same weights. Also the logs each run writes."""
import os
import signal

import pytest
import torch

from csl_ext.train import TrainConfig, train
from csl_ext.train.checkpoint import load_checkpoint

TINY = {
    "moco_v2": dict(arch="resnet10", width=4, hidden_dim=32, proj_dim=16, queue_size=32, momentum=0.9),
    "byol": dict(arch="resnet10", width=4, hidden_dim=32, proj_dim=16, warmup_epochs=1),
}


def _cfg(method, out, **kw):
    return TrainConfig(method=method, method_kwargs=TINY[method], batch_size=16, epochs=2, subset=48, out_dir=str(out),
                       backend="torchvision", progress=False, **kw)


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


@pytest.mark.parametrize("method", sorted(TINY))
def test_two_epochs_equal_one_stop_resume_one(method, tmp_path):
    full = train(_cfg(method, tmp_path / "full"))
    assert full.epoch == 2 and full.step == 6
    first = train(_cfg(method, tmp_path / "split", stop_after_epochs=1))
    assert first.epoch == 1 and first.step == 3
    assert not torch.equal(first.method.state_dict()["encoder.conv1.weight"], full.method.state_dict()["encoder.conv1.weight"])
    second = train(_cfg(method, tmp_path / "split", resume=True))
    assert second.epoch == 2 and second.step == 6
    _same(full.method.state_dict(), second.method.state_dict())
    # queue / EMA state live in the saved checkpoint too
    ckpt = load_checkpoint(str(tmp_path / "split" / "checkpoint.pt"))
    _same(ckpt["method"], full.method.state_dict())
    assert ckpt["epoch"] == 2 and ckpt["step"] == 6
    out = tmp_path / "split"
    assert (out / "log.csv").read_text().count("\n") == 1 + 6  # header + one row per step
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(out) if ".tmp" in f]  # atomic writes leave no temporary file


def test_sigterm_mid_epoch_checkpoints_and_resumes_exactly(tmp_path):
    full = train(_cfg("moco_v2", tmp_path / "full"))

    def kill_at_step_4(step):
        if step == 4:  # the second step of epoch 2
            os.kill(os.getpid(), signal.SIGTERM)

    stopped = train(_cfg("moco_v2", tmp_path / "cut"), on_step=kill_at_step_4)
    assert stopped.interrupted and stopped.step == 4 and stopped.epoch == 1
    ckpt = load_checkpoint(str(tmp_path / "cut" / "checkpoint.pt"))
    assert (ckpt["epoch"], ckpt["step"], ckpt["step_in_epoch"]) == (1, 4, 1)
    resumed = train(_cfg("moco_v2", tmp_path / "cut", resume=True))
    assert not resumed.interrupted and resumed.step == 6
    _same(full.method.state_dict(), resumed.method.state_dict())
