"""Evaluation on small labelled sets: the MLP protocol, the linear probe and
kNN separate separable classes and fall to chance on shuffled labels; a
saved checkpoint is evaluated by the one-command CLI."""
import json

import pytest
import torch

from csl_ext.eval import linear_probe, mlp_protocol, weighted_knn
from csl_ext.eval.evaluate import main as evaluate_main
from csl_ext.train import TrainConfig, train


def _clusters(n, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 16, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.arange(n) % 4
    return centres[y] + torch.randn(n, 16, generator=g), y


@pytest.mark.parametrize("protocol", [mlp_protocol, linear_probe])
def test_classifiers_learn_separable_features(protocol):
    (xt, yt), (xs, ys) = _clusters(200, 1), _clusters(100, 2)
    assert protocol(xt, yt, xs, ys, epochs=50) > 0.95
    shuffled = yt[torch.randperm(200, generator=torch.Generator().manual_seed(3))]
    assert protocol(xt, shuffled, xs, ys, epochs=50) < 0.6  # chance is 0.25


def test_weighted_knn():
    (xt, yt), (xs, ys) = _clusters(200, 1), _clusters(100, 2)
    assert weighted_knn(xt, yt, xs, ys, k=20) > 0.95
    shuffled = yt[torch.randperm(200, generator=torch.Generator().manual_seed(3))]
    assert weighted_knn(xt, shuffled, xs, ys, k=20) < 0.6  # chance is 0.25


def test_bad_inputs():
    x, y = _clusters(20, 1)
    with pytest.raises(ValueError, match="train_labels must have shape"):
        mlp_protocol(x, y[:5], x, y)
    with pytest.raises(ValueError, match="k must be"):
        weighted_knn(x, y, x, y, k=0)


def test_evaluate_a_saved_checkpoint(tmp_path, capsys):
    cfg = TrainConfig(method="simclr", method_kwargs=dict(arch="resnet10", width=4, hidden_dim=16, proj_dim=8),
                      batch_size=16, epochs=1, subset=32, out_dir=str(tmp_path), backend="torchvision", progress=False)
    train(cfg)
    result = evaluate_main(["--checkpoint", str(tmp_path / "checkpoint.pt"), "--epochs", "3"])
    assert set(result) == {"mlp", "linear", "knn"} and all(0.0 <= v <= 1.0 for v in result.values())
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["mlp"] == result["mlp"] and line["random_init"] is False
    assert result["knn"] > 0.2  # above chance (0.1) on digits even after one tiny epoch
