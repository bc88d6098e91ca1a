"""MLP (the paper's 1024-unit protocol) and linear probes on synthetic features."""

import pytest
import torch
from torch import nn

from csl_ext.eval import default_val_split, linear_probe, make_probe, mlp_probe
from csl_ext.eval.probe import split_validation


def separable(n, dim=16, classes=4, seed=0):
    """Features whose class is the argmax of a fixed linear map: linearly separable."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, classes, generator=torch.Generator().manual_seed(123))
    x = torch.randn(n, dim, generator=g) * 3 + 5  # off-centre, scaled: standardisation must cope
    return x, ((x - 5) @ w).argmax(1)


@pytest.mark.parametrize("probe,epochs", [(mlp_probe, 20), (linear_probe, 60)])  # a linear layer is cheap
def test_probe_learns_separable_features(probe, epochs):
    train_x, train_y = separable(600, seed=0)
    test_x, test_y = separable(300, seed=1)
    res = probe(train_x, train_y, test_x, test_y, epochs=epochs, batch_size=64)
    assert res.accuracy > 0.9, res
    assert res.train_accuracy > 0.9, res


@pytest.mark.parametrize("probe", [mlp_probe, linear_probe])
def test_probe_random_labels_is_chance(probe):
    g = torch.Generator().manual_seed(0)
    train_x, test_x = torch.randn(400, 16, generator=g), torch.randn(2000, 16, generator=g)
    train_y, test_y = torch.randint(0, 4, (400,), generator=g), torch.randint(0, 4, (2000,), generator=g)
    res = probe(train_x, train_y, test_x, test_y, epochs=10, batch_size=64)
    assert abs(res.accuracy - 0.25) < 0.05, res  # 2000 test rows: chance +- ~2.5 sigma


def test_mlp_has_one_hidden_layer_of_1024_relu_units():
    train_x, train_y = separable(64)
    res = mlp_probe(train_x, train_y, train_x, train_y, epochs=1)
    linears = [m for m in res.model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 1024), (1024, 4)]
    assert sum(isinstance(m, nn.ReLU) for m in res.model.modules()) == 1
    lin = linear_probe(train_x, train_y, train_x, train_y, epochs=1).model
    assert [(m.in_features, m.out_features) for m in lin.modules() if isinstance(m, nn.Linear)] == [(16, 4)]


@pytest.mark.parametrize("probe", [mlp_probe, linear_probe])
def test_probe_is_deterministic_given_the_seed(probe):
    train_x, train_y = separable(200, seed=0)
    test_x, test_y = separable(100, seed=1)
    kw = dict(epochs=3, batch_size=32)
    torch.manual_seed(1)
    a = probe(train_x, train_y, test_x, test_y, seed=5, **kw)
    torch.manual_seed(2)  # the global RNG state must not matter
    b = probe(train_x, train_y, test_x, test_y, seed=5, **kw)
    c = probe(train_x, train_y, test_x, test_y, seed=6, **kw)
    assert (a.accuracy, a.final_loss) == (b.accuracy, b.final_loss)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert a.final_loss != c.final_loss


def test_probe_handles_a_last_batch_of_one():
    # 65 rows at batch 64 would leave a batch of one, which BatchNorm1d refuses in training
    x, y = separable(65)
    assert 0 <= mlp_probe(x, y, x, y, epochs=2, batch_size=64).accuracy <= 1


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(hidden=0), "hidden"),
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=0.0), "lr"),
        (dict(weight_decay=-1.0), "weight_decay"),
    ],
)
def test_mlp_probe_bad_arguments(kwargs, name):
    x, y = separable(32)
    with pytest.raises(ValueError, match=name):
        mlp_probe(x, y, x, y, **kwargs)


def test_probe_mismatched_inputs():
    x, y = separable(32)
    with pytest.raises(ValueError, match="train_y"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="test_x"):
        mlp_probe(x, y, x[:, :3], y)
    with pytest.raises(ValueError, match="train_y"):
        mlp_probe(x, y.float(), x, y)
    with pytest.raises(ValueError, match="num_classes"):
        make_probe(16, 1)


def test_mlp_dropout_is_amdims_classifiers():
    # amdim-public model.py: Evaluator builds MLPClassifier(n_hidden=1024, p=0.2)
    x, y = separable(64)
    drops = [m.p for m in mlp_probe(x, y, x, y, epochs=1).model.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.2, 0.2]


@pytest.mark.parametrize("probe", [mlp_probe, linear_probe])
def test_validation_split_selects_the_best_epoch(probe):
    train_x, train_y = separable(300, seed=0)
    test_x, test_y = separable(200, seed=1)
    g = torch.Generator().manual_seed(3)
    noisy_y = torch.where(torch.rand(300, generator=g) < 0.3, torch.randint(0, 4, (300,), generator=g), train_y)
    res = probe(train_x, noisy_y, test_x, test_y, epochs=8, batch_size=32, lr=3e-2, val_split=0.2, seed=4)
    assert res.best_epoch is not None and 1 <= res.best_epoch <= 8 and res.epochs == 8
    # the returned model is the one that scored val_accuracy on the held-out rows
    fit_rows, val_rows = split_validation(300, 0.2, seed=4)
    assert len(val_rows) == 60 and len(set(fit_rows.tolist()) | set(val_rows.tolist())) == 300
    res.model.eval()
    with torch.no_grad():
        pred = res.model((train_x[val_rows] - res.mean) / res.std).argmax(1)
    assert float((pred == noisy_y[val_rows]).float().mean()) == pytest.approx(res.val_accuracy)
    # standardised with the 240 training rows only
    torch.testing.assert_close(res.mean, train_x[fit_rows].mean(0))
    plain = probe(train_x, noisy_y, test_x, test_y, epochs=8, batch_size=32, lr=3e-2, seed=4)
    assert plain.val_accuracy is None and plain.best_epoch is None


def test_validation_patience_stops_early():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 8, generator=g), torch.randint(0, 4, (200,), generator=g)  # nothing to learn
    res = mlp_probe(x, y, x, y, epochs=40, batch_size=50, val_split=50, patience=2)
    assert res.epochs < 40 and res.epochs - res.best_epoch == 2


@pytest.mark.parametrize("val_split", [0.0, 1.0, 1.5, 0, 199, "10%", True])
def test_bad_validation_split(val_split):
    x, y = separable(200)
    with pytest.raises(ValueError, match="val_split"):
        mlp_probe(x, y, x, y, epochs=1, val_split=val_split)
    with pytest.raises(ValueError, match="patience"):
        mlp_probe(x, y, x, y, epochs=1, val_split=0.1, patience=0)


def test_default_validation_split_per_dataset():
    assert default_val_split("cifar10") == 0.1 and default_val_split("stl10") == 0.1
    assert default_val_split("digits") is None and default_val_split("folder") is None
