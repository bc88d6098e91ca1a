"""AMDIM on the embedded digits, then the frozen-encoder evaluation.

Single process (2 CPU cores: a few minutes):
    python examples/train_amdim.py
    python examples/train_amdim.py --epochs 20 --resume
Two processes (DDP, gloo on CPU / NCCL on GPUs):
    torchrun --nproc_per_node=2 examples/train_amdim.py --batch-size 256

Larger settings: pl_bolts' AMDIM configurations (amdim_module.py, lr 2e-4, batch 200), whose
widths match the released checkpoints (amdim-public README: ndf 320, rkhs 2560, depth 10):
    CIFAR-10: --dataset cifar10 --data-root DIR --batch-size 200
              --method-kwargs '{"ndf": 320, "n_rkhs": 1280, "depth": 10}'
    STL-10:   --dataset stl10 --data-root DIR --image-size 64 --batch-size 200
              --method-kwargs '{"ndf": 192, "n_rkhs": 1536, "depth": 8}'
    ImageNet: --dataset folder --data-root DIR --image-size 128 --batch-size 200
              --method-kwargs '{"ndf": 320, "n_rkhs": 2560, "depth": 10}'
The optimiser, schedule and tclip defaults and their sources: docs/faithfulness.md.

- [0]: AMDIM, Bachman et al. 2019, https://arxiv.org/abs/1906.00910
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""

import sys

from csl_ext.train.example import run_example

# small widths: minutes on 2 CPU cores (larger settings are in the docstring);
# lr 1e-3, 5x the reference code's 2e-4, for a run of a few hundred steps
KWARGS = {"ndf": 32, "n_rkhs": 256, "depth": 3, "lr": 1e-3}

if __name__ == "__main__":
    sys.exit(run_example("amdim", KWARGS, epochs=30, batch_size=128, image_size=32))
