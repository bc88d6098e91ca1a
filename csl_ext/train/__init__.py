"""Pretraining: the Trainer loop, its config, its loader interface, checkpoints and logs.

>>> from csl_ext.train import TrainConfig, train
>>> result = train(TrainConfig(method="simclr", method_kwargs={"width": 16}, epochs=2, batch_size=128))
>>> result = train(TrainConfig(method="yadim", dataset="folder", data_root="~/images", image_size=128))
"""

from csl_ext.train.batches import PretrainBatches
from csl_ext.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from csl_ext.train.config import TrainConfig
from csl_ext.train.knn_monitor import KnnMonitor
from csl_ext.train.trainer import CHECKPOINT_NAME, Trainer, TrainResult, epoch_seed, train

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "KnnMonitor",
    "PretrainBatches",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "epoch_seed",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
