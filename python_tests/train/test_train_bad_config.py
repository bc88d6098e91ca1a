"""Bad configurations are rejected with clear errors before any training."""
import pytest

from csl_ext.train import TrainConfig, train
from csl_ext.train.trainer import check_config

TINY = dict(arch="resnet10", width=4, hidden_dim=16, proj_dim=8)


def test_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        train(TrainConfig(method="simsiam", batch_size=16, progress=False))


def test_batch_smaller_than_number_of_processes():
    with pytest.raises(ValueError, match="smaller than the number of processes"):
        check_config(TrainConfig(batch_size=2), world=4)
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        check_config(TrainConfig(batch_size=6), world=4)


def test_queue_not_a_multiple_of_the_batch(tmp_path):
    cfg = TrainConfig(method="moco_v2", method_kwargs=dict(TINY, queue_size=100), batch_size=16, out_dir=str(tmp_path), progress=False)
    with pytest.raises(ValueError, match=r"queue_size \(100\) must be a multiple of the global batch size \(16\)"):
        train(cfg)


def test_dataset_path_that_does_not_exist(tmp_path):
    missing = str(tmp_path / "nowhere")
    for name in ("cifar10", "stl10", "folder"):
        cfg = TrainConfig(method="simclr", method_kwargs=TINY, dataset=name, data_root=missing, batch_size=16, progress=False)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            train(cfg)


def test_unknown_dataset_and_missing_root():
    with pytest.raises(ValueError, match="dataset must be one of"):
        train(TrainConfig(dataset="mnist", progress=False))
    with pytest.raises(ValueError, match="needs a root directory"):
        train(TrainConfig(dataset="cifar10", progress=False))


def test_batch_larger_than_dataset(tmp_path):
    cfg = TrainConfig(method="simclr", method_kwargs=TINY, batch_size=64, subset=10, out_dir=str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="larger than the dataset"):
        train(cfg)
