"""CPC v2 on the embedded digits: pretrain, evaluate with the paper's protocol,
print the test accuracy beside a random-init encoder of the same architecture.

Default run (CPU, no download, a few minutes):
    python examples/train_cpc.py

Two processes with torch DDP (gloo on CPU, NCCL on GPUs; AMP on GPUs):
    torchrun --nproc_per_node=2 examples/train_cpc.py

Continue an interrupted run (checkpoints every epoch and on SIGTERM):
    python examples/train_cpc.py --resume

The paper's settings (Falcon & Cho 2020, https://arxiv.org/abs/2009.00104): ResNet with LayerNorm on a 7x7 grid of overlapping patches, Adam lr 2e-4, prediction 1-5 rows below, batch 512, hundreds of epochs.
    CIFAR-10 (32 px):  python examples/train_cpc.py --dataset cifar10 --data-root ~/data --batch-size 512 --epochs 500 --set blocks='(3, 4, 6, 3)' width=64 offsets='(1, 2, 3, 4, 5)' context_blocks=5 lr=2e-4
    STL-10 (96 -> 64 px, unlabeled split): python examples/train_cpc.py --dataset stl10 --data-root ~/data --image-size 64 --batch-size 512 --epochs 500 --set blocks='(3, 4, 6, 3)' width=64 offsets='(1, 2, 3, 4, 5)' context_blocks=5 lr=2e-4
    ImageNet (128 px image folder): torchrun --nproc_per_node=8 examples/train_cpc.py --dataset folder --data-root ~/imagenet --image-size 128 --batch-size 1024 --epochs 300 --set blocks='(3, 4, 6, 3)' width=64 offsets='(1, 2, 3, 4, 5)' context_blocks=5 lr=2e-4
Add --download to fetch CIFAR-10 / STL-10 when the network allows. Method
arguments go through --set key=value; see csl_ext.methods.cpc.
"""
from csl_ext.cli import main
from csl_ext.train import TrainConfig

# Small enough for two CPU cores: a narrow encoder and a few epochs on digits.
DEFAULTS = TrainConfig(
    method="cpc_v2",
    method_kwargs=dict(blocks=(1, 1), width=16, offsets=(1, 2, 3), context_blocks=1, lr=1e-3, warmup_epochs=1),
    dataset="digits",
    batch_size=128,
    epochs=3,
    out_dir="runs/cpc",
)

if __name__ == "__main__":
    main(defaults=DEFAULTS)
