"""evaluate_encoder on the embedded digits data."""

import pytest
import torch
from torch import nn

from csl_ext.data import load_dataset
from csl_ext.eval import evaluate_encoder, knn_accuracy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def tiny_conv(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
    )  # N x 32 x 8 x 8, pooled


def test_knn_on_raw_digit_pixels_is_well_above_chance(digits):
    train, test = digits
    acc = knn_accuracy(train.images.flatten(1).float(), train.labels, test.images.flatten(1).float(), test.labels)
    assert acc > 0.8  # chance is 0.1


def test_evaluate_encoder_on_digits(digits):
    train, test = digits
    enc = tiny_conv().train()
    res = evaluate_encoder(enc, train, test, probe_kwargs=dict(epochs=5))
    assert list(res) == ["mlp", "linear", "knn"]
    assert all(0.0 <= v <= 1.0 for v in res.values()), res
    assert res["knn"] > 0.3 and res["mlp"] > 0.3, res  # even random conv features beat chance (0.1)
    assert enc.training  # flag restored
    again = evaluate_encoder(enc, train, test, protocols=["mlp"], probe_kwargs=dict(epochs=5))
    assert again == {"mlp": res["mlp"]}  # deterministic


def test_evaluate_encoder_accepts_pairs_and_drops_unlabelled():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (30, 3, 16, 16), generator=g, dtype=torch.uint8)
    y = torch.arange(30) % 3
    y_unlab = y.clone()
    y_unlab[:5] = -1
    enc = tiny_conv()
    a = evaluate_encoder(enc, (x[5:], y[5:]), (x, y), protocols=("knn",), k=3)
    b = evaluate_encoder(enc, (x, y_unlab), (x, y), protocols=("knn",), k=3)
    assert a == b


def test_unknown_protocol(digits):
    with pytest.raises(ValueError, match="protocols"):
        evaluate_encoder(tiny_conv(), *digits, protocols=("mlp", "svm"))


def test_mismatched_labels():
    x = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="train_set"):
        evaluate_encoder(tiny_conv(), (x, torch.zeros(3, dtype=torch.long)), (x, torch.zeros(4, dtype=torch.long)))


def test_evaluate_encoder_validation_split_reaches_both_probes(digits):
    train, test = digits
    enc = tiny_conv()
    kw = dict(protocols=("mlp", "linear"), probe_kwargs=dict(epochs=3))
    plain = evaluate_encoder(enc, train, test, **kw)
    validated = evaluate_encoder(enc, train, test, val_split=0.1, **kw)
    same = evaluate_encoder(enc, train, test, probe_kwargs=dict(epochs=3, val_split=0.1), protocols=("mlp", "linear"))
    assert validated == same and validated != plain  # fewer training rows and model selection change the result
    with pytest.raises(ValueError, match="val_split"):
        evaluate_encoder(enc, train, test, val_split=2.0, protocols=("linear",))
