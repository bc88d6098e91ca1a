"""SimCLR on the embedded digits, then the frozen-encoder evaluation.

Single process (2 shared CPU cores: about 5 minutes, evaluation included):
    python examples/train_simclr.py
    python examples/train_simclr.py --epochs 20 --method-kwargs '{"width": 32}' --resume
Two processes (DDP, gloo on CPU / NCCL on GPUs, global batch norm):
    torchrun --nproc_per_node=2 examples/train_simclr.py --batch-size 256

The paper's settings (Chen et al. 2020; Falcon & Cho 2020, Sec. 5):
    CIFAR-10: --dataset cifar10 --data-root DIR --epochs 1000 --batch-size 1024
              --method-kwargs '{"width": 64, "temperature": 0.5, "base_lr": 0.3}'  (ResNet-50 in [0])
    STL-10:   --dataset stl10 --data-root DIR --image-size 64 --epochs 1000 --batch-size 1024
    ImageNet: --dataset folder --data-root DIR --image-size 128 --epochs 1000 --batch-size 4096
              --method-kwargs '{"arch": "resnet50", "cifar_stem": false, "temperature": 0.1}'

- [0]: SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709
"""

import sys

from csl_ext.train.example import run_example

# ResNet-18 at width 16: minutes on 2 CPU cores. The head's hidden width is the
# encoder's feature size (128 here), as in the SimCLR authors' code.
KWARGS = {"arch": "resnet18", "width": 16, "proj_dim": 64, "temperature": 0.5, "base_lr": 1.0, "warmup_epochs": 1}

if __name__ == "__main__":
    sys.exit(run_example("simclr", KWARGS, epochs=40, batch_size=128, image_size=32))
