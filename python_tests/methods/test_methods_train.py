"""Every method trains on real data (the embedded digits): a few optimiser
steps on one augmented batch lower its loss, with nothing non-finite."""

import numpy as np
import pytest
import torch

from csl_ext.augment import make_augmentation
from csl_ext.data import load_dataset
from csl_ext.methods import METHODS, build_method

# Tiny configurations of each method: seconds per step on two CPU cores.
TINY = {
    "simclr": dict(arch="resnet18", width=8, hidden_dim=64, proj_dim=32, warmup_epochs=0),
    # one step of keys: over 12 steps the key encoder remembers about one
    "moco_v2": dict(arch="resnet18", width=8, hidden_dim=64, proj_dim=32, queue_size=32),
    "byol": dict(arch="resnet18", width=8, hidden_dim=64, proj_dim=32, warmup_epochs=0),
    "amdim": dict(ndf=16, n_rkhs=64, depth=1, lr=1e-3, warmup_steps=0),
    "cpc_v2": dict(blocks=(1, 1), width=8, context_blocks=1, lr=1e-3),
    "yadim": dict(ndf=16, n_rkhs=64, depth=1, lr=1e-3),
    # csl_ext.methods.compose: SimCLR's parts by default
    "composed": dict(encoder_kwargs={"width": 0.125}, hidden_dim=64, proj_dim=32, warmup_epochs=0),
}
STEPS = 12
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small convolutions: one thread


@pytest.fixture(scope="module")
def digits_batch():
    data = load_dataset("digits", "train")
    images = data.images[:32].permute(0, 2, 3, 1).numpy()  # N x 32 x 32 x 3 uint8
    return images, np.asarray(data.labels[:32])


def test_every_registered_method_has_a_tiny_config():
    assert set(METHODS) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_loss_falls_on_one_batch_of_digits(name, digits_batch):
    torch.manual_seed(0)
    method = build_method(name, num_classes=10, **TINY[name])
    images, labels = digits_batch
    loader = make_augmentation(method.augmentation, 32, backend="torchvision").loader(
        images, labels, batch_size=32, num_workers=0, device="cpu", seed=0
    )
    *views, labels = next(iter(loader))
    assert len(views) == method.num_views
    optimizer, scheduler = method.configure_optimizer(batch_size=32, total_steps=STEPS, steps_per_epoch=STEPS)
    losses = []
    for step in range(STEPS):
        out = method.training_step(views, labels)
        assert torch.isfinite(out.loss), f"{name}: non-finite loss at step {step}"
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        scheduler.step()
        method.on_step_end(step, STEPS)
        losses.append(out.ssl_loss.item())
    # MoCo's loss first rises while its random initial queue fills with real
    # keys (harder negatives): compare from the first step with a full queue.
    start = TINY[name].get("queue_size", 0) // 32
    assert np.mean(losses[-3:]) < np.mean(losses[start : start + 3]), f"{name}: loss did not fall: {losses}"
    features = method.embed(torch.randn(3, 3, 32, 32))
    assert features.shape == (3, method.feature_dim) and torch.isfinite(features).all()


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method must be one of"):
        build_method("simsiam")


def test_bad_method_arguments_are_rejected():
    with pytest.raises(ValueError, match="image_size"):
        build_method("amdim", image_size=48)
    with pytest.raises(ValueError, match="image_size"):
        build_method("cpc_v2", image_size=20)
    with pytest.raises(ValueError, match="queue_size"):
        build_method("moco_v2", queue_size=0)
