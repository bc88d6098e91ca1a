"""Pretraining: the loop, DDP set-up, checkpoints and logs."""
from csl_ext.train.trainer import TrainConfig, TrainResult, cleanup_distributed, train

__all__ = ["TrainConfig", "TrainResult", "train", "cleanup_distributed"]
