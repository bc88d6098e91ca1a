"""YADIM on the embedded digits: pretrain, evaluate with the paper's protocol,
print the test accuracy beside a random-init encoder of the same architecture.

Default run (CPU, no download, a few minutes):
    python examples/train_yadim.py

Two processes with torch DDP (gloo on CPU, NCCL on GPUs; AMP on GPUs):
    torchrun --nproc_per_node=2 examples/train_yadim.py

Continue an interrupted run (checkpoints every epoch and on SIGTERM):
    python examples/train_yadim.py --resume

The paper's settings (Falcon & Cho 2020, https://arxiv.org/abs/2009.00104): AMDIM encoder preset of the image size, union of the AMDIM and CPC pipelines, (-1:-1) NCE with dot product, Adam lr 2e-4, batch 200-1008.
    CIFAR-10 (32 px):  python examples/train_yadim.py --dataset cifar10 --data-root ~/data --batch-size 512 --epochs 500 
    STL-10 (96 -> 64 px, unlabeled split): python examples/train_yadim.py --dataset stl10 --data-root ~/data --image-size 64 --batch-size 512 --epochs 500 
    ImageNet (128 px image folder): torchrun --nproc_per_node=8 examples/train_yadim.py --dataset folder --data-root ~/imagenet --image-size 128 --batch-size 1024 --epochs 300 
Add --download to fetch CIFAR-10 / STL-10 when the network allows. Method
arguments go through --set key=value; see csl_ext.methods.yadim.
"""
from csl_ext.cli import main
from csl_ext.train import TrainConfig

# Small enough for two CPU cores: a narrow encoder and a few epochs on digits.
DEFAULTS = TrainConfig(
    method="yadim",
    method_kwargs=dict(ndf=16, n_rkhs=64, depth=1, lr=1e-3, warmup_epochs=1),
    dataset="digits",
    batch_size=128,
    epochs=6,
    out_dir="runs/yadim",
)

if __name__ == "__main__":
    main(defaults=DEFAULTS)
