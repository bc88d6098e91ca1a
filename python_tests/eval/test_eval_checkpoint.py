"""python -m csl_ext.eval.evaluate_checkpoint end to end on a tiny SimCLR."""

import os
import subprocess
import sys

import pytest
import torch

from csl_ext.eval.evaluate_checkpoint import build_from_checkpoint, load_checkpoint, main
from csl_ext.methods import build_method

KWARGS = dict(arch="resnet18", width=8, hidden_dim=32, proj_dim=16)  # 64-d features: seconds on CPU


def save_checkpoint(path, method, **extra):
    ckpt = dict(
        method="simclr",
        method_kwargs=KWARGS,
        model=method.state_dict(),
        dataset="digits",
        data_root=None,
        image_size=32,
        epoch=3,
        step=42,
    )
    ckpt.update(extra)
    torch.save(ckpt, path)
    return path


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(123)
    method = build_method("simclr", **KWARGS)
    with torch.no_grad():  # make the weights differ from any fresh initialisation
        for p in method.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return save_checkpoint(tmp_path / "last.pt", method), method


def table(out):
    """{protocol: [numbers]} from the printed table."""
    rows = {}
    for line in out.strip().splitlines()[2:]:
        name, *values = line.split()
        rows[name] = [float(v) for v in values]
    return rows


def test_evaluates_a_checkpoint(checkpoint, capsys):
    path, method = checkpoint
    res = main([str(path), "--protocols", "knn", "linear", "--epochs", "3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "method simclr" in out and "epoch 3" in out and "1437 train / 360 test" in out
    assert out.splitlines()[1].split() == ["protocol", "trained"]
    rows = table(out)
    assert list(rows) == ["knn", "linear"]
    assert rows["knn"][0] == pytest.approx(res["trained"]["knn"], abs=1e-4)
    assert all(0 <= v[0] <= 1 for v in rows.values())


def test_random_init_is_evaluated_too(checkpoint, capsys):
    path, _ = checkpoint
    res = main([str(path), "--protocols", "knn", "--random-init", "--device", "cpu"])
    rows = table(capsys.readouterr().out)
    assert set(res) == {"trained", "random_init"}
    assert len(rows["knn"]) == 2
    assert rows["knn"] == [
        pytest.approx(res["trained"]["knn"], abs=1e-4),
        pytest.approx(res["random_init"]["knn"], abs=1e-4),
    ]


def test_rebuild_loads_the_weights_and_random_init_is_seeded(checkpoint):
    path, method = checkpoint
    ckpt = load_checkpoint(str(path))
    trained = build_from_checkpoint(ckpt)
    for (name, a), b in zip(method.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(a, b), name
    r1 = build_from_checkpoint(ckpt, random_init=True, seed=0)
    r2 = build_from_checkpoint(ckpt, random_init=True, seed=0)
    w = "encoder.conv1.weight"
    assert torch.equal(r1.state_dict()[w], r2.state_dict()[w])
    assert not torch.equal(r1.state_dict()[w], trained.state_dict()[w])


def test_ddp_prefixed_state_dict_loads(tmp_path, checkpoint):
    _, method = checkpoint
    state = {"module." + key: v for key, v in method.state_dict().items()}
    path = save_checkpoint(tmp_path / "ddp.pt", method, model=state)
    loaded = build_from_checkpoint(load_checkpoint(str(path)))
    assert torch.equal(loaded.encoder.conv1.weight, method.encoder.conv1.weight)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        main([str(tmp_path / "nope.pt")])


def test_not_a_csl_ext_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="missing keys.*method"):
        main([str(tmp_path / "other.pt")])
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a csl_ext checkpoint"):
        main([str(tmp_path / "list.pt")])


def test_unknown_protocol(checkpoint):
    with pytest.raises(ValueError, match="protocols"):
        main([str(checkpoint[0]), "--protocols", "svm"])


def test_command_line(checkpoint):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "csl_ext.eval.evaluate_checkpoint",
            str(checkpoint[0]),
            "--protocols",
            "knn",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout
    assert list(table(out)) == ["knn"]


def test_evaluates_a_folder_checkpoint(tmp_path, image_folder, capsys):
    """A run on an image folder: train/ and val/ are streamed by decoding workers;
    val classes that differ from train's are refused."""
    root = image_folder(per_class={"train": 6, "val": 3}, classes=3, size=20)
    torch.manual_seed(0)
    path = save_checkpoint(
        tmp_path / "folder.pt", build_method("simclr", **KWARGS), dataset="folder", data_root=root, image_size=16
    )
    res = main([str(path), "--protocols", "knn", "--device", "cpu", "--num-workers", "2"])
    out = capsys.readouterr().out
    assert "dataset folder (18 train / 9 test images)" in out and 0 <= res["trained"]["knn"] <= 1
    os.rename(os.path.join(root, "val", "class_2"), os.path.join(root, "val", "class_5"))
    with pytest.raises(ValueError, match="same class folders"):
        main([str(path), "--protocols", "knn", "--device", "cpu"])
