"""One call that evaluates an encoder with every protocol on a train / test pair.

- [0]: Falcon & Cho 2020, https://arxiv.org/abs/2009.00104
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from csl_ext.eval.features import extract_features
from csl_ext.eval.knn import knn_accuracy
from csl_ext.eval.probe import linear_probe, mlp_probe

# "mlp" is the paper's number; "linear" and "knn" are the cheaper checks
PROTOCOLS = ("mlp", "linear", "knn")


def check_protocols(protocols) -> tuple[str, ...]:
    """Validated, de-duplicated protocol names. Raises ValueError naming `protocols`."""
    if isinstance(protocols, str):
        protocols = (protocols,)
    protocols = tuple(dict.fromkeys(protocols))
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise ValueError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {list(protocols)!r}")
    return protocols


def _images_and_labels(data, name: str):
    """(images or dataset, labels (N,) int64) from an ImageArray-like or an (images, labels) pair."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
    elif hasattr(data, "labels") and (hasattr(data, "get_batch") or hasattr(data, "images")):
        images, labels = data, data.labels
    else:
        raise ValueError(f"{name} must be an ImageArray or an (images, labels) pair, got {type(data).__name__}")
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if labels.ndim != 1 or labels.shape[0] != len(images):
        raise ValueError(f"{name}: labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    return images, labels


def evaluate_encoder(
    encoder: nn.Module,
    train_set,
    test_set,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    device=None,
    batch_size: int = 256,
    mean=None,
    std=None,
    k: int = 20,
    temperature: float = 0.07,
    seed: int = 0,
    val_split: float | int | None = None,
    probe_kwargs: dict | None = None,
) -> dict[str, float]:
    """Test accuracies of a frozen encoder under the chosen protocols.

    Features are extracted once per split (`extract_features`) and shared by
    all protocols. Unlabelled rows (label -1) are dropped.

    Args:
        encoder: nn.Module or csl_ext Method (evaluated through `embed`).
        train_set, test_set: ImageArray-like (``labels`` and ``get_batch``)
            or (uint8 (N, 3, H, W), (N,) labels) pairs.
        protocols: any of "mlp" (the paper's, [0]), "linear", "knn".
        device: where the encoder runs and the probes train (default: the
            encoder's device).
        batch_size: images per encoder forward pass.
        mean, std: input normalisation (default: the eval augmentation's).
        k, temperature: of the kNN.
        seed: of the probes (and of their validation split).
        val_split: the probes hold out this fraction / number of training
            rows as a validation split and report the test accuracy of the
            epoch best on it (see csl_ext.eval.probe); None: no validation.
            ``default_val_split(dataset)`` gives 0.1 for CIFAR-10 / STL-10
            (45k / 5k on CIFAR-10) and None for the others.
        probe_kwargs: extra arguments of `mlp_probe` / `linear_probe`
            (epochs, lr, weight_decay, batch_size, ...; "hidden" goes to the MLP only).

    Returns:
        {protocol: test accuracy in [0, 1]} in the order of `protocols`.

    Raises:
        ValueError: unknown protocol, malformed sets (and the probes' / kNN's errors).

    Example:
        >>> evaluate_encoder(method, load_dataset("digits", "train"), load_dataset("digits", "test"))
        ...  # doctest: +SKIP
        {'mlp': 0.93, 'linear': 0.91, 'knn': 0.90}
    """
    protocols = check_protocols(protocols)
    train_images, train_y = _images_and_labels(train_set, "train_set")
    test_images, test_y = _images_and_labels(test_set, "test_set")
    feats = {}
    for split, images, labels in (("train", train_images, train_y), ("test", test_images, test_y)):
        keep = labels >= 0
        x = extract_features(encoder, images, batch_size=batch_size, device=device, mean=mean, std=std)
        feats[split] = (x[keep], labels[keep])
    (train_x, train_y), (test_x, test_y) = feats["train"], feats["test"]

    probe_kwargs = dict(probe_kwargs or {})
    probe_kwargs.setdefault("val_split", val_split)
    hidden = probe_kwargs.pop("hidden", 1024)
    results = {}
    for protocol in protocols:
        if protocol == "mlp":
            res = mlp_probe(train_x, train_y, test_x, test_y, hidden=hidden, seed=seed, device=device, **probe_kwargs)
            results[protocol] = res.accuracy
        elif protocol == "linear":
            lin_kwargs = {key: v for key, v in probe_kwargs.items() if key not in ("dropout", "batch_norm")}
            results[protocol] = linear_probe(
                train_x, train_y, test_x, test_y, seed=seed, device=device, **lin_kwargs
            ).accuracy
        else:
            results[protocol] = knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature)
    return results
