"""Methods composed by name from the five parts of Falcon & Cho's framework.

``compose(augmentation=, encoder=, extraction=, similarity=, loss=, **hp)``
builds a trainable Method from one choice per part; the "composed" entry of
METHODS is the same class, so ``csl-train --method composed --method-kwargs
'{"loss": "amdim_nce", ...}'`` trains one.

=============== ================================================================
part            choices
=============== ================================================================
augmentation    a csl_ext.augment recipe: simclr, moco_v2, byol, amdim, yadim
                (two views; yadim adds CPC's patch stage on the device, as the
                YADIM class does), cpc_v2 (one grid of augmented patches)
encoder         any csl_ext.encoders.ENCODERS entry; ``encoder_kwargs`` its
                arguments (e.g. {"width": 0.125})
extraction      "pooled" (the last layer, pooled: SimCLR / MoCo / BYOL);
                a comparison spec of csl_ext.tasks.COMPARISONS ("amdim",
                "last", "last_random", "same_level" or e.g. "(-1:-2)+(-2:-2)");
                "cpc" (CPC's context network + one prediction head per step)
similarity      "dot", "scaled_dot" (dot / sqrt(D)), "cosine",
                "projection_cosine" (an MLP head, then cosine)
loss            "nt_xent" (SimCLR), "info_nce" (MoCo: a queue of keys from a
                momentum encoder), "amdim_nce" (AMDIM: tanh-clipped NCE with
                its score regulariser), "cpc_infonce" (multi-step InfoNCE)
=============== ================================================================

Which parts fit together (anything else is a ValueError naming both parts):
nt_xent and info_nce need extraction "pooled" and a cosine similarity;
amdim_nce needs a comparison spec and "scaled_dot" (its scores are
<a, p> / sqrt(D)); cpc_infonce needs extraction "cpc", augmentation
"cpc_v2", "dot" or "scaled_dot", and a patch encoder (not "amdim").

Hyperparameters (keyword arguments; the defaults are the paper settings of
the method whose loss is chosen): image_size (32), num_classes (None),
encoder_kwargs, optimizer ("lars" for nt_xent, "sgd" for info_nce, "adam"
otherwise), lr (LARS / SGD: per 256 images; Adam: as is), weight_decay,
warmup_epochs; nt_xent / info_nce: temperature, hidden_dim, proj_dim,
head_batch_norm; info_nce: queue_size, momentum; amdim_nce: tclip,
reg_coef, patch_stage (default: augmentation == "yadim"); cpc_infonce:
offsets, context_blocks.

SimCLR, AMDIM and YADIM composed from their parts are the classes: same
modules, same parameters from the same seed, same loss and gradients
(python_tests/methods/test_compose.py).

- [0]: Falcon & Cho 2020, §3 (the framework) and §3.3 (YADIM, designed by
  choosing parts), https://arxiv.org/abs/2009.00104

Example:
    >>> yadim_like = compose(augmentation="yadim", encoder="resnet18", extraction="last",
    ...                      similarity="scaled_dot", loss="amdim_nce", encoder_kwargs={"width": 0.125})
"""

import copy
import math

import torch
import torch.nn.functional as F

from csl_ext import distributed
from csl_ext.encoders.registry import (
    ARCHS,
    build_encoder,
    build_map_encoder,
    build_patch_encoder,
)
from csl_ext.heads import ProjectionHead, SimCLRProjectionHead
from csl_ext.losses.info_nce import info_nce
from csl_ext.losses.nt_xent import nt_xent
from csl_ext.methods.base import Method
from csl_ext.methods.registry import register
from csl_ext.ops.patchify import patch_grid
from csl_ext.optim.factory import OPTIMIZERS, make_optimizer
from csl_ext.tasks.amdim import FeatureMapContrastiveTask
from csl_ext.tasks.comparisons import parse_comparisons
from csl_ext.tasks.cpc import CPCTask, default_offsets

__all__ = ["AUGMENTATIONS", "LOSSES", "SIMILARITIES", "ComposedMethod", "compose"]

AUGMENTATIONS = ("simclr", "moco_v2", "byol", "amdim", "yadim", "cpc_v2")
SIMILARITIES = ("dot", "scaled_dot", "cosine", "projection_cosine")
LOSSES = ("nt_xent", "info_nce", "amdim_nce", "cpc_infonce")

# Per loss: the hyperparameters it takes and their defaults (the method's paper settings).
_DEFAULTS = {
    "nt_xent": {
        "temperature": 0.5,
        "hidden_dim": None,
        "proj_dim": 128,
        "head_batch_norm": True,
        "optimizer": "lars",
        "lr": 0.3,
        "weight_decay": 1e-6,
        "warmup_epochs": 10,
    },
    "info_nce": {
        "temperature": 0.2,
        "hidden_dim": 2048,
        "proj_dim": 128,
        "head_batch_norm": False,
        "queue_size": 65536,
        "momentum": 0.999,
        "optimizer": "sgd",
        "lr": 0.03,
        "weight_decay": 1e-4,
        "warmup_epochs": 0,
    },
    # tclip None: 10 with the "yadim" augmentation (YADIM's, pl_bolts'), else 20 (AMDIM's code)
    "amdim_nce": {
        "tclip": None,
        "reg_coef": 0.05,
        "patch_stage": None,
        "optimizer": "adam",
        "lr": 2e-4,
        "weight_decay": 1e-5,
        "warmup_epochs": 0.0,
    },
    # offsets None: every step whose target shares no pixels with the context (2..6), as CPCV2
    "cpc_infonce": {
        "offsets": None,
        "directions": ("down", "up"),
        "target_dim": 64,
        "scale": 0.1,
        "context_blocks": 5,
        "optimizer": "adam",
        "lr": 2e-4,
        "weight_decay": 1e-5,
        "warmup_epochs": 0.0,
    },
}
_COMMON = {"image_size": 32, "num_classes": None, "encoder_kwargs": None}


def _extraction_kind(extraction) -> str:
    """ "pooled", "cpc" or "comparisons" (a spec parsed against 3 maps)."""
    if extraction in ("pooled", "cpc"):
        return extraction
    try:
        parse_comparisons(extraction, 3)
    except ValueError as error:
        raise ValueError(f"extraction must be 'pooled', 'cpc' or a comparison spec; {error}") from None
    return "comparisons"


def check_parts(augmentation: str, encoder: str, extraction: str, similarity: str, loss: str) -> str:
    """Validates each part and their combination; returns the extraction kind.

    Raises:
        ValueError: an unknown choice (naming the part), or two parts that do
            not fit together (naming both).
    """
    from csl_ext.encoders.registry import check_encoder_name

    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {augmentation!r}")
    check_encoder_name(encoder)
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    kind = _extraction_kind(extraction)

    def clash(part_a, a, part_b, b, why):
        raise ValueError(f"{part_a}={a!r} does not fit {part_b}={b!r}: {why}")

    needs = {"nt_xent": "pooled", "info_nce": "pooled", "amdim_nce": "comparisons", "cpc_infonce": "cpc"}
    if needs[loss] != kind:
        want = {"pooled": "'pooled'", "comparisons": "a comparison spec such as 'amdim' or '(-1:-1)'", "cpc": "'cpc'"}[
            needs[loss]
        ]
        clash("loss", loss, "extraction", extraction, f"{loss} needs extraction {want}")
    if loss in ("nt_xent", "info_nce") and similarity not in ("cosine", "projection_cosine"):
        clash(
            "loss",
            loss,
            "similarity",
            similarity,
            f"{loss} scores L2-normalised vectors: use 'cosine' or 'projection_cosine'",
        )
    if loss == "amdim_nce" and similarity != "scaled_dot":
        clash("loss", loss, "similarity", similarity, "amdim_nce scores <a, p> / sqrt(D): use 'scaled_dot'")
    if loss == "cpc_infonce" and similarity not in ("dot", "scaled_dot"):
        clash(
            "loss",
            loss,
            "similarity",
            similarity,
            "cpc_infonce scores predictions by a dot product: use 'dot' or 'scaled_dot'",
        )
    if (augmentation == "cpc_v2") != (kind == "cpc"):
        why = (
            "cpc_v2 makes one grid of patches, which only CPC's context + prediction extraction reads"
            if augmentation == "cpc_v2"
            else "CPC's extraction needs the grid of patches of augmentation 'cpc_v2'"
        )
        clash("augmentation", augmentation, "extraction", extraction, why)
    if kind == "cpc" and encoder == "amdim":
        clash(
            "encoder",
            encoder,
            "extraction",
            extraction,
            "AMDIM's encoder needs whole 32 / 64 / 128 px images, not CPC's patches",
        )
    return kind


@register("composed")
class ComposedMethod(Method):
    """A Method from one choice per part (see the module docstring).

    Args:
        augmentation, encoder, extraction, similarity, loss: the parts;
            the defaults are SimCLR's.
        **hyperparameters: see the module docstring; an unknown one is an error.

    Shapes:
        views: two (N, 3, S, S) tensors, or one (N, 7, 7, 3, p, p) patch grid
        for cpc_v2; embed: (N, 3, S, S) -> (N, feature_dim).
    """

    def __init__(
        self,
        augmentation: str = "simclr",
        encoder: str = "resnet18",
        extraction: str = "pooled",
        similarity: str = "projection_cosine",
        loss: str = "nt_xent",
        **hyperparameters,
    ):
        kind = check_parts(augmentation, encoder, extraction, similarity, loss)
        allowed = {**_COMMON, **_DEFAULTS[loss]}
        unknown = sorted(set(hyperparameters) - set(allowed))
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown} for loss={loss!r}; it takes {sorted(allowed)}")
        hp = {**allowed, **hyperparameters}
        if hp["optimizer"] not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {hp['optimizer']!r}")
        super().__init__(hp["num_classes"])
        self.augmentation = augmentation
        self.num_views = 1 if augmentation == "cpc_v2" else 2
        self.parts = {
            "augmentation": augmentation,
            "encoder": encoder,
            "extraction": extraction,
            "similarity": similarity,
            "loss": loss,
        }
        self.kind, self.loss_name, self.hp = kind, loss, hp
        self.global_bn = loss == "nt_xent"  # SimCLR's global BN under DDP
        encoder_kwargs = dict(hp["encoder_kwargs"] or {})
        image_size = hp["image_size"]
        if kind == "pooled":
            if encoder in ARCHS:
                encoder_kwargs.setdefault("stem", "cifar")
            elif encoder in ("amdim", "cpc_resnet"):
                encoder_kwargs.setdefault("image_size", image_size)
            self.encoder = build_encoder(encoder, **encoder_kwargs)
            self.feature_dim = self.encoder.feature_dim
            self.head = None
            if similarity == "projection_cosine":
                hidden = hp["hidden_dim"] or self.feature_dim  # None: the feature size, as SimCLR's code
                if loss == "nt_xent" and hp["head_batch_norm"]:
                    self.head = SimCLRProjectionHead(self.feature_dim, hp["proj_dim"], hidden)
                else:
                    self.head = ProjectionHead(
                        self.feature_dim, hidden, hp["proj_dim"], batch_norm=hp["head_batch_norm"]
                    )
            if loss == "info_nce":
                self._make_queue(hp)
        elif kind == "comparisons":
            self.encoder = build_map_encoder(encoder, image_size, **encoder_kwargs)
            self.feature_dim = self.encoder.n_rkhs
            tclip = hp["tclip"] if hp["tclip"] is not None else (10.0 if augmentation == "yadim" else 20.0)
            self.task = FeatureMapContrastiveTask(extraction, tclip, hp["reg_coef"])
        else:
            self.encoder = build_patch_encoder(encoder, image_size, **encoder_kwargs)
            self.feature_dim = self.encoder.feature_dim
            # "dot": CPC's scaled dot product (pl_bolts' embed_scale, 0.1); "scaled_dot": 1 / sqrt(target_dim)
            scale = hp["scale"] if similarity == "dot" else 1.0 / math.sqrt(hp["target_dim"] or self.feature_dim)
            patch, stride = image_size // 4, image_size // 8
            offsets = hp["offsets"] or default_offsets(patch_grid(image_size, patch, stride), patch, stride)
            self.task = CPCTask(
                self.feature_dim,
                offsets=tuple(offsets),
                target_dim=hp["target_dim"],
                context_blocks=hp["context_blocks"],
                scale=scale,
                directions=hp["directions"],
            )
        self._make_probe()
        self.patch_stage = None
        use_patches = hp.get("patch_stage")
        if kind == "comparisons" and (use_patches if use_patches is not None else augmentation == "yadim"):
            self.patch_stage = _yadim_patch_stage(image_size)

    # -- info_nce's key encoder and queue (MoCo) ---------------------------------------
    def _make_queue(self, hp: dict) -> None:
        if not isinstance(hp["queue_size"], int) or hp["queue_size"] < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {hp['queue_size']!r}")
        if not 0 <= hp["momentum"] < 1:
            raise ValueError(f"momentum must be in [0, 1), got {hp['momentum']!r}")
        self.key_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.key_head = None if self.head is None else copy.deepcopy(self.head).requires_grad_(False)
        dim = hp["proj_dim"] if self.head is not None else self.feature_dim
        self.register_buffer("queue", F.normalize(torch.randn(hp["queue_size"], dim), dim=1))  # K x D
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _momentum_update(self) -> None:
        m = self.hp["momentum"]
        pairs = [(self.encoder, self.key_encoder)] + ([(self.head, self.key_head)] if self.head is not None else [])
        for online, key in pairs:
            for p, k in zip(online.parameters(), key.parameters()):
                k.mul_(m).add_(p.detach(), alpha=1 - m)

    @torch.no_grad()
    def _enqueue(self, k: torch.Tensor) -> None:
        keys = distributed.gather_no_grad(k)  # world*N x D, no gradient (none needed)
        ptr, b = int(self.queue_ptr), keys.shape[0]
        self.queue[ptr : ptr + b] = F.normalize(keys.to(self.queue.dtype), dim=1)
        self.queue_ptr.fill_((ptr + b) % self.queue.shape[0])

    def check_batch_size(self, global_batch: int) -> None:
        if self.loss_name == "info_nce" and self.queue.shape[0] % global_batch:
            raise ValueError(
                f"queue_size ({self.queue.shape[0]}) must be a multiple of the global batch size "
                f"({global_batch}) so that each step replaces whole slots of the queue"
            )

    # -- the step ------------------------------------------------------------------------
    def _project(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.head is None else self.head(h)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "pooled":
            return self.encoder(x)
        if self.kind == "comparisons":
            return self.encoder(x)[-1].flatten(1)  # N x D
        return self.encoder(x).mean(dim=(2, 3))  # N x D, the grid's mean

    def ssl_step(self, views):
        if self.kind == "cpc":
            (grid,) = views  # B x nH x nW x 3 x p x p
            b, n_h, n_w = grid.shape[:3]
            vectors = self.encoder.encoder(grid.flatten(0, 2))  # B*nH*nW x D
            grid_features = vectors.reshape(b, n_h, n_w, -1).permute(0, 3, 1, 2).float()  # B x D x nH x nW
            loss = self.task(grid_features, gather=distributed.is_distributed())  # every process's negatives
            return loss, grid_features.mean(dim=(2, 3))
        x1, x2 = views
        n = x1.shape[0]
        if self.kind == "comparisons":
            if self.patch_stage is not None and self.training:
                with torch.no_grad():  # augmentation: no gradient to the pixels
                    x1, x2 = self.patch_stage(x1), self.patch_stage(x2)
            # one pass per view, as the AMDIM class: the embeddings' BN sees each view's own batch
            maps1 = [m.float() for m in self.encoder(x1)]
            maps2 = [m.float() for m in self.encoder(x2)]
            loss, reg = self.task(maps1, maps2, gather=distributed.is_distributed())
            return loss + reg, maps1[-1].flatten(1)
        if self.loss_name == "nt_xent":
            h = self.encoder(torch.cat([x1, x2]))  # 2N x F: batch norm sees both views, as SimCLR
            z = self._project(h)
            loss = nt_xent(z[:n].float(), z[n:].float(), self.hp["temperature"], gather=distributed.is_distributed())
            return loss, h[:n]
        h = self.encoder(x1)  # info_nce: queries
        q = self._project(h)
        if self.training:
            self._momentum_update()  # before the keys, as MoCo's Algorithm 1
        with torch.no_grad():
            k = self.key_encoder(x2)
            k = k if self.key_head is None else self.key_head(k)
        loss = info_nce(q.float(), k.float(), self.queue.clone(), self.hp["temperature"])
        if self.training:
            self._enqueue(k)
        return loss, h

    def configure_optimizer(self, batch_size, total_steps, steps_per_epoch):
        hp = self.hp
        # LARS / SGD rates are per 256 images (SimCLR, MoCo); Adam's is not scaled and stays
        # constant after the warm-up, as the AMDIM / CPC / YADIM classes.
        lr = hp["lr"] if hp["optimizer"] == "adam" else hp["lr"] * batch_size / 256
        return make_optimizer(
            hp["optimizer"],
            self.method_parameters(),
            lr=lr,
            weight_decay=hp["weight_decay"],
            total_steps=total_steps,
            warmup_steps=int(hp["warmup_epochs"] * steps_per_epoch),
            final_ratio=1.0 if hp["optimizer"] == "adam" else 0.0,
        )


def _yadim_patch_stage(image_size: int):
    """YADIM's device-side patch stage (the same one the YADIM class builds)."""
    from csl_ext.augment.config import method_config
    from csl_ext.augment.patch_stage import yadim_patch_stage

    config = method_config("yadim", image_size)
    return yadim_patch_stage(image_size, config.mean, config.std, "patches")


def compose(
    augmentation: str, encoder: str, extraction: str, similarity: str, loss: str, **hyperparameters
) -> ComposedMethod:
    """A trainable Method from one choice per part of the framework.

    Args:
        augmentation, encoder, extraction, similarity, loss: see the module
            docstring for the choices and which fit together.
        **hyperparameters: see the module docstring.

    Returns:
        A ComposedMethod (METHODS["composed"]).

    Raises:
        ValueError: an unknown choice or hyperparameter, or two parts that do
            not fit together (the message names both).

    Example:
        >>> simclr = compose(augmentation="simclr", encoder="resnet18", extraction="pooled",
        ...                  similarity="projection_cosine", loss="nt_xent", temperature=0.5)
    """
    return ComposedMethod(augmentation, encoder, extraction, similarity, loss, **hyperparameters)
