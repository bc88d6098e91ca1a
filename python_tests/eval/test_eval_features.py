"""extract_features: frozen, normalised, pooled, deterministic."""

import pytest
import torch
from torch import nn

from csl_ext.augment import make_augmentation
from csl_ext.data import load_dataset
from csl_ext.eval import extract_features, pool_features


class Recorder(nn.Module):
    """Returns its (normalised) input's channel means; records the mode it ran in."""

    def __init__(self, output="flat"):
        super().__init__()
        self.output, self.modes = output, []
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.modes.append(self.training)
        assert not torch.is_grad_enabled()
        if self.output == "map":
            return x * self.scale  # N x 3 x H x W
        if self.output == "list":
            return [torch.full_like(x, 99.0), x * self.scale]  # the last map is the one to use
        return x.mean(dim=(2, 3)) * self.scale  # N x 3


def images(n=10, size=16, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("training", [True, False])
def test_runs_in_eval_mode_and_restores_the_flag(training):
    enc = Recorder().train(training)
    extract_features(enc, images(), batch_size=4)
    assert enc.modes == [False, False, False]  # 10 images in batches of 4
    assert enc.training is training


def test_restores_the_flag_when_the_encoder_raises():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    enc = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        extract_features(enc, images())
    assert enc.training


@pytest.mark.parametrize("output", ["flat", "map", "list"])
def test_normalises_with_the_eval_statistics_and_pools(output):
    x = images(size=32)
    cfg = make_augmentation("eval", 32, backend="torchvision").config
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1)
    expected = ((x.float() / 255 - mean) / std).mean(dim=(2, 3))  # N x 3
    got = extract_features(Recorder(output), x, batch_size=3)
    assert got.dtype == torch.float32 and got.shape == (10, 3)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_explicit_mean_std():
    x = images()
    got = extract_features(Recorder(), x, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    torch.testing.assert_close(got, x.float().mean(dim=(2, 3)) / 255)


def test_pool_features_shapes():
    assert pool_features(torch.ones(2, 5, 3, 3)).shape == (2, 5)
    assert pool_features([torch.zeros(2, 4, 6, 6), torch.ones(2, 7, 1, 1)]).shape == (2, 7)
    assert pool_features(torch.ones(2, 9)).shape == (2, 9)
    with pytest.raises(ValueError, match="empty"):
        pool_features([])


def test_imagearray_input_and_determinism():
    data = load_dataset("digits", "test")
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5))
    a = extract_features(enc, data, batch_size=100)
    b = extract_features(enc, data, batch_size=64)  # eval mode: dropout off, BN running stats
    c = extract_features(enc, data.images)
    assert a.shape == (360, 8)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    assert torch.equal(enc[1].running_mean, torch.zeros(8))  # no BN statistics were updated


def test_bad_inputs():
    with pytest.raises(ValueError, match="images"):
        extract_features(Recorder(), images().float())
    with pytest.raises(ValueError, match="images"):
        extract_features(Recorder(), torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(Recorder(), images(), batch_size=0)
    with pytest.raises(ValueError, match="std"):
        extract_features(Recorder(), images(), mean=(0, 0, 0), std=(1, 0, 1))


def test_image_folder_is_streamed_by_decoding_workers(image_folder):
    """A JPEG / PNG folder: features from 2 decoding workers equal the in-process
    ones, and equal those of the decoded images as one tensor."""
    from csl_ext.data import ImageFolder

    root = image_folder(per_class={"val": 5}, classes=3, size=20)
    serial = ImageFolder(root, "val", 16)
    streamed = ImageFolder(root, "val", 16, num_workers=2)
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    a = extract_features(enc, streamed, batch_size=4)  # 15 images: batches of 4, 4, 4, 3
    b = extract_features(enc, serial, batch_size=4)
    c = extract_features(enc, serial.get_batch(range(15))[0])
    assert a.shape == (15, 8)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
