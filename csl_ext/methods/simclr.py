"""SimCLR: two augmented views, a ResNet, a 2-layer MLP head and NT-Xent.

Parts (Falcon & Cho 2020, Table 1): augmentation = crop + flip + colour jitter
+ grayscale (+ blur); encoder = ResNet; representation = last layer, pooled;
similarity = projection head + cosine; loss = NT-Xent over the 2N - 2
negatives of the global batch. Optimiser: LARS, lr 0.3 x B / 256, weight
decay 1e-6, 10 warm-up epochs then cosine decay; global batch norm under DDP.

- [0]: SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709
"""
import torch

from csl_ext import distributed
from csl_ext.encoders.registry import method_encoder
from csl_ext.heads import ProjectionHead
from csl_ext.losses.nt_xent import nt_xent
from csl_ext.methods.base import Method
from csl_ext.methods.registry import register
from csl_ext.optim.lars import lars_warmup_cosine


@register("simclr")
class SimCLR(Method):
    """SimCLR [0].

    Args:
        arch, cifar_stem, width: the ResNet encoder (see ResNetEncoder).
        encoder, encoder_kwargs: any csl_ext.encoders.ENCODERS entry and its
            arguments, e.g. "wide_resnet50_2", {"width": 0.125}; None kwargs:
            arch / width / cifar_stem above (see registry.method_encoder).
        hidden_dim: projection head hidden width (2048 in [0]).
        proj_dim: projection size (128 in [0]).
        temperature: NT-Xent temperature (0.5 for CIFAR-10 in [0], B.9; 0.1
            with large batches on ImageNet).
        base_lr: LARS lr per 256 images (0.3 in [0]; the lr is base_lr x B / 256).
        weight_decay: 1e-6 in [0].
        warmup_epochs: linear warm-up epochs (10 in [0]).
        num_classes: online probe classes (None: no probe).

    Shapes:
        views: two (N, 3, H, W) tensors; embed: (N, 3, H, W) -> (N, feature_dim).
    """

    augmentation = "simclr"
    global_bn = True

    def __init__(self, arch="resnet18", cifar_stem=True, width=64, hidden_dim=2048, proj_dim=128,
                 temperature=0.5, base_lr=0.3, weight_decay=1e-6, warmup_epochs=10, num_classes=None,
                 encoder: str = "resnet18", encoder_kwargs: dict | None = None):
        super().__init__(num_classes)
        self.encoder = method_encoder(encoder, encoder_kwargs, arch=arch, width=width, cifar_stem=cifar_stem)
        self.feature_dim = self.encoder.feature_dim
        self.head = ProjectionHead(self.feature_dim, hidden_dim, proj_dim, batch_norm=True)
        self.temperature, self.base_lr, self.weight_decay = temperature, base_lr, weight_decay
        self.warmup_epochs = warmup_epochs
        self._make_probe()

    def ssl_step(self, views):
        x1, x2 = views
        n = x1.shape[0]
        # one pass over both views: batch norm sees the 2N views, as in [0]'s code
        h = self.encoder(torch.cat([x1, x2]))  # 2N x F
        z = self.head(h)  # 2N x proj_dim
        loss = nt_xent(z[:n].float(), z[n:].float(), self.temperature, gather=distributed.is_distributed())
        return loss, h[:n]

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        return lars_warmup_cosine(self.method_parameters(), self.base_lr, batch_size, self.weight_decay,
                                  total_steps, self.warmup_epochs * steps_per_epoch)
