"""Tiny training configs shared by the trainer tests (seconds on 2 CPU cores)."""

import pytest
import torch

from csl_ext.train import TrainConfig

# tiny heads and encoders: ResNet-18 at width 4 on 16 px images
TINY = {
    "simclr": {"arch": "resnet18", "width": 4, "hidden_dim": 16, "proj_dim": 8, "warmup_epochs": 1},
    "moco_v2": {"arch": "resnet18", "width": 4, "hidden_dim": 16, "proj_dim": 8, "queue_size": 32},
    "byol": {"arch": "resnet18", "width": 4, "hidden_dim": 16, "proj_dim": 8, "warmup_epochs": 1},
}


def tiny_config(output_dir, method="simclr", **overrides) -> TrainConfig:
    """32 digits images, batch 8: 4 steps per epoch."""
    kw = dict(
        method=method,
        method_kwargs=dict(TINY[method]),
        dataset="digits",
        image_size=16,
        subset=32,
        epochs=2,
        batch_size=8,
        num_workers=0,
        seed=3,
        output_dir=str(output_dir),
        backend="torchvision",
        log_every=1,
        progress=False,
        tensorboard=False,
        knn_images=0,
    )
    kw.update(overrides)
    return TrainConfig(**kw)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Every state_dict tensor (parameters and buffers: queues, EMA targets) equal bit for bit."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:5]}"


@pytest.fixture(autouse=True)
def _two_threads():
    # the machine has 2 shared cores; more threads only oversubscribe
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)
