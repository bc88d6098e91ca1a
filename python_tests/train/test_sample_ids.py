"""PretrainBatches' sample ids name the images each batch holds, on both
backends, from arrays (folders: python_tests/data/test_folder_sharding.py)."""

import numpy as np
import pytest
import torch

from csl_ext.augment import make_augmentation
from csl_ext.augment.factory import dali_available
from csl_ext.data.arrays import ImageArray
from csl_ext.train.batches import PretrainBatches

N, BATCH = 38, 8  # 4 steps of 8 per epoch; 6 images left over (drop_last)
BACKENDS = ["torchvision", pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no DALI"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start_step", [0, 2])
def test_sample_ids_name_the_images_of_each_batch(backend, start_step):
    # image i is flat grey at level 10 + 6 i: its id can be read back from any crop of it
    images = torch.from_numpy(np.repeat((10 + 6 * np.arange(N, dtype=np.uint8))[:, None, None, None], 3, 1))
    images = images.expand(N, 3, 16, 16).contiguous()
    data = ImageArray(images, torch.arange(N) % 2, num_classes=2)
    aug = make_augmentation("simclr", 16, backend=backend, jitter_p=0.0, gray_p=0.0)
    batches = PretrainBatches(
        data,
        aug,
        local_batch=BATCH,
        rank=0,
        world_size=1,
        num_workers=0,
        device=torch.device("cpu"),
        seed=3,
        with_labels=True,
    )
    mean, std = torch.tensor(aug.config.mean).view(1, 3, 1, 1), torch.tensor(aug.config.std).view(1, 3, 1, 1)
    seen = []
    for epoch in range(2):
        steps = list(batches.epoch(epoch, start_step if epoch == 0 else 0))
        assert len(steps) == N // BATCH - (start_step if epoch == 0 else 0)
        for views, labels, sample_ids in steps:
            assert sample_ids.dtype == torch.int64 and sample_ids.shape == (BATCH,)
            level = ((views[0] * std + mean) * 255).mean((1, 2, 3))
            read = ((level - 10) / 6).round().long()
            assert torch.equal(read, sample_ids)
            assert torch.equal(labels, sample_ids % 2)
        seen.append(torch.cat([ids for _, _, ids in steps]))
    assert len(set(seen[1].tolist())) == len(seen[1])  # no image twice in an epoch
    assert not torch.equal(seen[0][-BATCH:], seen[1][-BATCH:])  # a new order every epoch
