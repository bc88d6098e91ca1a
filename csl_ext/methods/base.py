"""The base class every method inherits: the five parts of Falcon & Cho (2020)
composed into one nn.Module with a training step.

A method owns its encoder (part 2), its representation extraction (part 3),
its similarity (part 4) and its loss (part 5); the augmentation (part 1) is
named by `augmentation` and applied by the trainer to make `num_views` views.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class StepOutput:
    """What a training step returns.

    Attributes:
        loss: scalar to back-propagate: the self-supervised loss plus the
            online probe's loss (on detached features, so it does not reach
            the encoder).
        ssl_loss: the self-supervised loss alone (detached), for logging.
        probe_loss: the online probe's cross-entropy (detached), or None.
        probe_acc: the online probe's accuracy on this batch, or None.
    """

    loss: torch.Tensor
    ssl_loss: torch.Tensor
    probe_loss: torch.Tensor | None = None
    probe_acc: torch.Tensor | None = None


class Method(nn.Module):
    """Base of SimCLR, MoCo v2, BYOL, AMDIM, CPC v2, YADIM.

    Subclasses set ``self.encoder`` and ``self.feature_dim`` and implement
    `ssl_step(views) -> (loss, features)` where features are (N, feature_dim)
    representations of the first view, used by the online probe.

    Class attributes:
        name: registry key (set by `register`).
        augmentation: the augmentation recipe (csl_ext.augment method name).
        num_views: views per image the augmentation makes.
        global_bn: convert batch norm to global batch norm under DDP.
        uses_sample_ids: ssl_step takes ``sample_ids`` ((N,) int64 dataset
            indices of the batch's images, or None), e.g. MoCo v2 to keep an
            image's own earlier keys out of its negatives.

    Args:
        num_classes: classes of the online linear probe on detached features
            (None: no probe). Labels of -1 (unlabelled data) are ignored.
    """

    name = "base"
    augmentation = "simclr"
    num_views = 2
    global_bn = False
    uses_sample_ids = False

    def __init__(self, num_classes: int | None = None):
        super().__init__()
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"num_classes must be None or an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.probe: nn.Module | None = None

    def _make_probe(self) -> None:
        """Creates the online probe once feature_dim is known."""
        if self.num_classes is not None:
            self.probe = nn.Linear(self.feature_dim, self.num_classes)

    # -- what subclasses implement ------------------------------------------------
    def ssl_step(self, views: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """views: num_views tensors (N, 3, H, W) -> (scalar loss, (N, F) features)."""
        raise NotImplementedError

    def configure_optimizer(self, batch_size: int, total_steps: int, steps_per_epoch: int):
        """(optimizer, per-step lr scheduler) of the method's parameters, with
        the paper's settings scaled to the global `batch_size`."""
        raise NotImplementedError

    @torch.no_grad()
    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step (EMA / momentum updates)."""

    def check_batch_size(self, global_batch: int) -> None:
        """Raises ValueError for a batch size the method cannot use."""

    @property
    def find_unused_parameters(self) -> bool:
        """Whether DDP must look for parameters that got no gradient this step:
        a feature-map task that compares only some of the encoder's maps
        ((-1:-1), or a random target map) leaves the other maps' embedding
        heads out of the loss, which plain DDP refuses."""
        from csl_ext.tasks.amdim import FeatureMapContrastiveTask

        return isinstance(getattr(self, "task", None), FeatureMapContrastiveTask)

    # -- shared -------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation to evaluate: (N, 3, H, W) -> (N, feature_dim)."""
        return self.encoder(x)

    def training_step(
        self, views, labels: torch.Tensor | None = None, sample_ids: torch.Tensor | None = None
    ) -> StepOutput:
        """One step's loss: views (num_views tensors (N, ...)), labels (N,) or
        None, sample_ids (N,) dataset indices or None (used where
        ``uses_sample_ids``)."""
        if len(views) != self.num_views:
            raise ValueError(f"{self.name} needs {self.num_views} views per image, got {len(views)}")
        ids = {"sample_ids": sample_ids} if self.uses_sample_ids else {}
        loss, features = self.ssl_step(tuple(views), **ids)
        out = StepOutput(loss=loss, ssl_loss=loss.detach())
        if self.probe is not None and labels is not None:
            logits = self.probe(features.detach().float())  # N x classes; no gradient to the encoder
            valid = labels >= 0
            # Unlabelled batches (STL-10 unlabeled split): a zero loss that
            # still touches the probe so DDP sees a gradient for it.
            probe_loss = F.cross_entropy(logits[valid], labels[valid]) if bool(valid.any()) else logits.sum() * 0
            out.probe_loss = probe_loss.detach()
            out.probe_acc = (logits.argmax(1)[valid] == labels[valid]).float().mean() if bool(valid.any()) else None
            out.loss = loss + probe_loss
        return out

    def forward(self, views, labels: torch.Tensor | None = None, sample_ids: torch.Tensor | None = None) -> StepOutput:
        # forward = training_step so that DDP's hooks see the whole step
        return self.training_step(views, labels, sample_ids)

    def probe_parameters(self):
        return [] if self.probe is None else list(self.probe.parameters())

    def method_parameters(self):
        """Parameters the method's optimiser updates (not the probe's)."""
        probe = {id(p) for p in self.probe_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in probe]
