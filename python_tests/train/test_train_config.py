"""Bad configurations are rejected with a ValueError naming the argument."""

import pytest
from conftest import tiny_config

from csl_ext.train import TrainConfig, train


def test_unknown_method(tmp_path):
    with pytest.raises(ValueError, match="method must be one of .*'simclr'.*got 'simclrr'"):
        cfg = tiny_config(tmp_path)
        cfg.method = "simclrr"
        train(cfg)


def test_batch_smaller_than_the_number_of_processes():
    with pytest.raises(ValueError, match=r"batch_size \(global, 2\) is smaller than the number of processes \(4\)"):
        TrainConfig(batch_size=2).validate(world_size=4)
    with pytest.raises(ValueError, match="batch_size .* multiple of the number of processes"):
        TrainConfig(batch_size=6).validate(world_size=4)


def test_moco_queue_not_a_multiple_of_the_batch(tmp_path):
    cfg = tiny_config(tmp_path, "moco_v2")
    cfg.method_kwargs["queue_size"] = 36  # batch 8
    with pytest.raises(ValueError, match=r"queue_size \(36\) must be a multiple of the global batch size \(8\)"):
        train(cfg)


def test_dataset_path_that_does_not_exist(tmp_path):
    with pytest.raises(ValueError, match="data_root .* does not exist"):
        train(tiny_config(tmp_path, dataset="cifar10", data_root=str(tmp_path / "no_such_dir")))
    with pytest.raises(ValueError, match="needs data_root"):
        train(tiny_config(tmp_path, dataset="cifar10"))


@pytest.mark.parametrize(
    "field,value",
    [("epochs", 0), ("batch_size", 0), ("backend", "opencv"), ("max_steps", 0), ("amp", "fp8"), ("image_size", 8)],
)
def test_other_bad_values_name_the_argument(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value}).validate()


def test_batch_larger_than_the_data(tmp_path):
    with pytest.raises(ValueError, match="batch_size .* larger than the 32 training images"):
        train(tiny_config(tmp_path, batch_size=64))
