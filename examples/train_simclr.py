"""SimCLR on the embedded digits: pretrain, evaluate with the paper's protocol,
print the test accuracy beside a random-init encoder of the same architecture.

Default run (CPU, no download, a few minutes):
    python examples/train_simclr.py

Two processes with torch DDP (gloo on CPU, NCCL on GPUs; AMP on GPUs):
    torchrun --nproc_per_node=2 examples/train_simclr.py

Continue an interrupted run (checkpoints every epoch and on SIGTERM):
    python examples/train_simclr.py --resume

The paper's settings (Falcon & Cho 2020, https://arxiv.org/abs/2009.00104): ResNet-50, batch 4096, LARS lr 4.8 (0.3 x B/256), wd 1e-6, temperature 0.1 (ImageNet) / 0.5 (CIFAR-10, ResNet-50 with the CIFAR stem, 1000 epochs), 100-1000 epochs, 10 warm-up epochs, global BN.
    CIFAR-10 (32 px):  python examples/train_simclr.py --dataset cifar10 --data-root ~/data --batch-size 512 --epochs 500 --set arch='"resnet50"' width=64 hidden_dim=2048 proj_dim=128
    STL-10 (96 -> 64 px, unlabeled split): python examples/train_simclr.py --dataset stl10 --data-root ~/data --image-size 64 --batch-size 512 --epochs 500 --set arch='"resnet50"' width=64 hidden_dim=2048 proj_dim=128
    ImageNet (128 px image folder): torchrun --nproc_per_node=8 examples/train_simclr.py --dataset folder --data-root ~/imagenet --image-size 128 --batch-size 1024 --epochs 300 --set arch='"resnet50"' width=64 hidden_dim=2048 proj_dim=128
Add --download to fetch CIFAR-10 / STL-10 when the network allows. Method
arguments go through --set key=value; see csl_ext.methods.simclr.
"""
from csl_ext.cli import main
from csl_ext.train import TrainConfig

# Small enough for two CPU cores (with a larger lr than the paper's for so few steps): a narrow encoder (the ImageNet stem downsamples
# the 32 px upsampled 8x8 digits back to 8x8 cheaply) and a few epochs on digits.
DEFAULTS = TrainConfig(
    method="simclr",
    method_kwargs=dict(arch='resnet10', width=16, cifar_stem=False, hidden_dim=256, proj_dim=64, temperature=0.5, base_lr=4.0, warmup_epochs=1),
    dataset="digits",
    batch_size=128,
    epochs=8,
    out_dir="runs/simclr",
)

if __name__ == "__main__":
    main(defaults=DEFAULTS)
