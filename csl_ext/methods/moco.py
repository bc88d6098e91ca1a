"""MoCo v2: a momentum key encoder and a queue of negatives.

Parts (Falcon & Cho 2020, Table 1): augmentation = SimCLR's (crop + jitter +
grayscale + blur); encoder = ResNet (query) and its momentum copy (key);
representation = last layer, pooled; similarity = MLP head + cosine; loss =
InfoNCE of each query against its key and K queued keys, temperature 0.2.
Optimiser: SGD, lr 0.03 x B / 256, momentum 0.9, weight decay 1e-4, cosine.

- [0]: MoCo, He et al. 2020, Algorithm 1, https://arxiv.org/abs/1911.05722
- [1]: MoCo v2, Chen et al. 2020, https://arxiv.org/abs/2003.04297
- [2]: facebookresearch/moco, colab/moco_cifar10_demo.ipynb (the authors'
  one-GPU CIFAR-10 demo: ``--symmetric``, SplitBatchNorm)
"""

import copy
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F

from csl_ext import distributed
from csl_ext.encoders.registry import method_encoder
from csl_ext.heads import ProjectionHead
from csl_ext.losses.info_nce import info_nce
from csl_ext.methods.base import Method
from csl_ext.methods.budget import (
    SHORT_RUN_FRACTION,
    check_optimizer,
    ema_momentum,
    method_optimizer,
)
from csl_ext.methods.registry import register
from csl_ext.nn.split_batch_norm import convert_split_batchnorm

# lr per 256 images of each optimiser: SGD is [0]'s; LARS and Adam scale their steps differently.
DEFAULT_BASE_LR = {"sgd": 0.03, "lars": 0.3, "adam": 1e-3}


@register("moco_v2")
class MoCoV2(Method):
    """MoCo v2 [1].

    Args:
        arch, cifar_stem, width: the ResNet encoder.
        encoder, encoder_kwargs: any csl_ext.encoders.ENCODERS entry and its
            arguments (None kwargs: arch / width / cifar_stem).
        hidden_dim, proj_dim: MLP head (2048 -> 128 in [1]).
        head_batch_norm: batch norm in the head's hidden layer. [1] has none;
            small encoders trained for few steps need it (see the example):
            without it their pooled ReLU features share one large mean
            direction, every projection starts nearly parallel (cosine ~1),
            and InfoNCE's gradient is too small to pull them apart.
        queue_size: K negatives (65536 in [0]). Must be a multiple of the
            global batch size B. The queue holds the keys of the last K / B
            steps, made by key encoders of those steps; [0] (Sec. 3.2) keeps
            them consistent with a slow key encoder: 256 steps of keys against
            a memory 1 / (1 - m) of 1000 steps at m = 0.999. A queue spanning
            as many steps as the key encoder remembers holds keys of a
            different encoder, which the queries can tell apart by that alone
            (a warning says so at the start of training when K / B is more
            than half the memory).
        momentum: key encoder EMA coefficient m (0.999 in [0]; 0.99 in [0]'s
            CIFAR-10 demo).
        temperature: 0.2 in [1].
        optimizer: ``"sgd"`` ([0]'s, default: momentum 0.9, cosine [1]),
            ``"lars"`` or ``"adam"`` (csl_ext.optim.make_optimizer).
        base_lr: lr per 256 images; None: 0.03 for SGD [0], 0.3 for LARS,
            1e-3 for Adam.
        weight_decay: 1e-4 [0].
        exclude_own_keys: drop from the negatives the queued keys of the
            images in the batch (their earlier views), when the trainer passes
            each image's dataset index (``sample_ids``); up to N of the K
            negatives go per step. [0] keeps them (default): with K = 65536 of
            1.28M images a query almost never meets its own image in the
            queue. With a queue that holds much of a small dataset it often
            does (K = 1024 of 1437 digits at batch 256: a third of the
            queries), and is told that its own earlier view is a negative.
            Measured on digits (docs/quality.md) it changed little there; a
            queue that spans fewer steps than the key encoder remembers
            (queue_size, above) mattered more.
        symmetric: also swap the views' roles (queries of x_k against keys of
            x_q) and add the two losses, enqueueing both views' keys, as the
            option of the authors' CIFAR-10 demo [2], whose notes say it
            "behaves like 2x epochs of the asymmetric counterpart" (kNN 85.3
            against 82.6 after 200 epochs there). Default False: the papers'
            asymmetric loss [0, 1]. Each encoder then runs twice a step, and
            queue_size must be a multiple of 2 x the global batch.
        short_run_fraction: the key encoder's memory 1 / (1 - m) is at most
            this fraction of the run (default 0.1; None: m whatever the
            length). At m = 0.999 the key encoder averages ~1000 steps: in a
            75-step run it stays 93% its random initialisation, the keys carry
            no learnt signal and the queries learn to match noise. Over 75
            steps m becomes 0.867; from 10^4 steps on m = 0.999 is kept.
        bn_splits: batch norm statistics per process come from this many
            sub-batches (SplitBatchNorm), and the keys' images are shuffled
            within the process too. 1 is the paper's setting (one BN group per
            GPU); in one process use 8 or so, as MoCo's CIFAR-10 demo does,
            or a query and its key share statistics the queue lacks and the
            model "cheats" ([0], Sec. 3.3).
        num_classes: online probe classes (None: no probe).

    State (buffers, saved in checkpoints): queue (K, proj_dim), queue_ids (K,)
    (dataset index of each queued key, -1: none), queue_ptr.
    Shuffled batch norm: under DDP the keys' images are shuffled across
    processes before the key encoder and unshuffled after ([0], Sec. 3.3); in
    one process they are shuffled across the bn_splits sub-batches (with
    bn_splits=1 there is nothing to shuffle across and BN is plain).
    """

    augmentation = "moco_v2"
    uses_sample_ids = True

    def __init__(
        self,
        arch="resnet18",
        cifar_stem=True,
        width=64,
        hidden_dim=2048,
        proj_dim=128,
        queue_size=65536,
        momentum=0.999,
        temperature=0.2,
        optimizer: str = "sgd",
        base_lr: float | None = None,
        weight_decay=1e-4,
        head_batch_norm=False,
        bn_splits=1,
        exclude_own_keys: bool = False,
        symmetric: bool = False,
        short_run_fraction: float | None = SHORT_RUN_FRACTION,
        num_classes=None,
        encoder: str = "resnet18",
        encoder_kwargs: dict | None = None,
    ):
        super().__init__(num_classes)
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {queue_size!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.optimizer = check_optimizer(optimizer)
        self.encoder = convert_split_batchnorm(
            method_encoder(encoder, encoder_kwargs, arch=arch, width=width, cifar_stem=cifar_stem), bn_splits
        )
        self.bn_splits = bn_splits
        self.feature_dim = self.encoder.feature_dim
        head = ProjectionHead(self.feature_dim, hidden_dim, proj_dim, batch_norm=head_batch_norm)
        self.head = convert_split_batchnorm(head, bn_splits)
        self.key_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))  # K x D
        self.register_buffer("queue_ids", torch.full((queue_size,), -1, dtype=torch.long))  # K
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.exclude_own_keys, self.symmetric = exclude_own_keys, bool(symmetric)
        self.queue_size, self.momentum, self.temperature = queue_size, momentum, temperature
        self.base_lr = DEFAULT_BASE_LR[optimizer] if base_lr is None else base_lr
        self.weight_decay, self.short_run_fraction = weight_decay, short_run_fraction
        self.current_momentum = momentum  # m of the next update, set per step from the run's length
        self._make_probe()

    def check_batch_size(self, global_batch):
        local_batch = global_batch // distributed.world_size()
        if local_batch % self.bn_splits:
            raise ValueError(
                f"the batch size per process ({local_batch}) must be a multiple of "
                f"bn_splits ({self.bn_splits}): each split is one batch-norm group"
            )
        keys_per_step = self._keys_per_step(global_batch)
        if self.queue_size % keys_per_step:
            what = (
                f"2 x the global batch size ({keys_per_step}: symmetric=True enqueues both views' keys)"
                if self.symmetric
                else f"the global batch size ({keys_per_step})"
            )
            raise ValueError(
                f"queue_size ({self.queue_size}) must be a multiple of {what} "
                "so that each step replaces whole slots of the queue"
            )

    def _keys_per_step(self, global_batch: int) -> int:
        return 2 * global_batch if self.symmetric else global_batch

    @torch.no_grad()
    def _momentum_update(self):
        for online, key in ((self.encoder, self.key_encoder), (self.head, self.key_head)):
            for p, k in zip(online.parameters(), key.parameters()):
                k.mul_(self.current_momentum).add_(p.detach(), alpha=1 - self.current_momentum)

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """Key projections (N, D) with batch norm shuffled across processes
        (and across sub-batches within a process when bn_splits > 1)."""
        n = x.shape[0]
        if distributed.world_size() == 1:
            if self.bn_splits == 1:
                return self.key_head(self.key_encoder(x))
            perm = torch.randperm(n, device=x.device)
            return self.key_head(self.key_encoder(x[perm]))[torch.argsort(perm)]
        x_all = distributed.gather_no_grad(x)  # world*N x 3 x H x W
        perm = torch.randperm(x_all.shape[0], device=x.device)
        dist.broadcast(perm, src=0)  # every process uses rank 0's permutation
        mine = perm.view(-1, n)[distributed.rank()]  # this process's shuffled images
        k = self.key_head(self.key_encoder(x_all[mine]))
        k_all = distributed.gather_no_grad(k)  # in shuffled order
        unshuffle = torch.argsort(perm)
        return k_all[unshuffle].view(distributed.world_size(), n, -1)[distributed.rank()]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before queue_ids existed: every queued key of an unknown image
        state_dict.setdefault(prefix + "queue_ids", torch.full_like(self.queue_ids, -1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def _enqueue(self, k: torch.Tensor, sample_ids: torch.Tensor | None) -> None:
        keys = distributed.gather_no_grad(k)  # world*N x D, NO gradient (none needed)
        ptr, b = int(self.queue_ptr), keys.shape[0]
        self.queue[ptr : ptr + b] = F.normalize(keys.to(self.queue.dtype), dim=1)
        if sample_ids is None:
            self.queue_ids[ptr : ptr + b] = -1
        else:
            self.queue_ids[ptr : ptr + b] = distributed.gather_no_grad(sample_ids.to(self.queue_ids.device))
        self.queue_ptr.fill_((ptr + b) % self.queue_size)

    def _negatives(self, sample_ids: torch.Tensor | None) -> torch.Tensor:
        """The queue (K', D), less the keys of this batch's images when asked."""
        if sample_ids is None or not self.exclude_own_keys:
            return self.queue.clone()
        own = torch.isin(self.queue_ids, sample_ids.to(self.queue_ids.device))  # K
        return self.queue[~own]

    def ssl_step(self, views, sample_ids: torch.Tensor | None = None):
        """views: (x_q, x_k), each (N, 3, H, W); sample_ids: (N,) int64 dataset
        indices of the images, or None (then no key is excluded).
        Returns the loss and the query features (N, F) of x_q."""
        x_q, x_k = views
        if sample_ids is not None and (sample_ids.dtype != torch.long or sample_ids.shape != (x_q.shape[0],)):
            raise ValueError(
                f"sample_ids must be an int64 tensor of shape ({x_q.shape[0]},), "
                f"got {sample_ids.dtype} {tuple(sample_ids.shape)}"
            )
        if self.training:
            self._momentum_update()  # before the keys, as in [0]'s Algorithm 1
        negatives = self._negatives(sample_ids)  # the queue before this step's keys join it
        loss, h, k = self._contrast(x_q, x_k, negatives)
        if self.symmetric:  # [2]: the views swap roles, the two losses add up
            loss_21, _, k_1 = self._contrast(x_k, x_q, negatives)
            loss = loss + loss_21
            k = torch.cat([k, k_1])
            sample_ids = None if sample_ids is None else torch.cat([sample_ids, sample_ids])
        if self.training:
            self._enqueue(k, sample_ids)
        return loss, h

    def _contrast(self, x_q, x_k, negatives):
        """InfoNCE of the queries of x_q against the keys of x_k and the
        negatives (K', D); returns (loss, query features (N, F), keys (N, D))."""
        h = self.encoder(x_q)  # N x F
        q = self.head(h)  # N x D
        k = self._keys(x_k)  # N x D
        return info_nce(q.float(), k.float(), negatives, self.temperature), h, k

    @torch.no_grad()
    def on_step_end(self, step, total_steps):
        self.current_momentum = ema_momentum(self.momentum, total_steps, self.short_run_fraction)

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        self.current_momentum = ema_momentum(self.momentum, total_steps, self.short_run_fraction)
        span, memory = self.queue_size / self._keys_per_step(batch_size), 1 / (1 - self.current_momentum)
        # one step of keys is the shortest queue there is (it must hold whole steps): nothing to advise
        if span > 1 and span > memory / 2:
            warnings.warn(
                f"moco_v2: the queue (queue_size={self.queue_size}) holds the keys of the last {span:g} steps, "
                f"but the key encoder (m = {self.current_momentum:.3f} in this run) remembers about {memory:.1f}: "
                "its negatives come from encoders the current one no longer resembles (MoCo, Sec. 3.2). Use a "
                f"queue_size of at most {max(1, int(memory / 2)) * self._keys_per_step(batch_size)} "
                "or a momentum closer to 1",
                stacklevel=2,
            )
        return method_optimizer(
            self.optimizer,
            self.method_parameters(),
            base_lr=self.base_lr,
            batch_size=batch_size,
            weight_decay=self.weight_decay,
            total_steps=total_steps,
            warmup=0,
        )
