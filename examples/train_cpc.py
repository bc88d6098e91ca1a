"""CPC v2 on the embedded digits, then the frozen-encoder evaluation.

Single process (2 CPU cores: a few minutes):
    python examples/train_cpc.py
    python examples/train_cpc.py --epochs 20 --resume
Two processes (DDP, gloo on CPU / NCCL on GPUs):
    torchrun --nproc_per_node=2 examples/train_cpc.py --batch-size 256

Larger settings (pl_bolts' CPC_v2 cuts 8 px patches at 32 px, 16 px at 64 px; lr 1e-4 default):
    CIFAR-10: --dataset cifar10 --data-root DIR --batch-size 256
              (8x8 patches, stride 4: a 7x7 grid at 32 px; ResNet-50-style CPC encoder with LayerNorm)
    STL-10:   --dataset stl10 --data-root DIR --image-size 64 --batch-size 256
    ImageNet: --dataset folder --data-root DIR --image-size 256 --batch-size 512
              --method-kwargs '{"encoder": "resnet161"}'  (Henaff et al.'s ResNet-161: ResNet-101
              with its third stack widened to 46 blocks of 512 -> 4096 channels)
    Falcon & Cho's down-only prediction: --method-kwargs '{"directions": ["down"]}'
    pl_bolts' evaluated features (the flattened 7x7 grid, not its mean): --method-kwargs '{"embedding": "grid"}'
The defaults and their sources: docs/faithfulness.md.

- [0]: CPC v2, Henaff et al. 2020, https://arxiv.org/abs/1905.09272
- [1]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""

import sys

from csl_ext.train.example import run_example

# small widths: minutes on 2 CPU cores (larger settings are in the docstring)
KWARGS = {"blocks": [1, 1, 1], "width": 16, "lr": 1e-3}  # lr 5x the 2e-4 default: a short run

if __name__ == "__main__":
    sys.exit(run_example("cpc_v2", KWARGS, epochs=10, batch_size=128, image_size=32))
