"""Online kNN monitor: is pretraining helping, while it runs?

Every epoch (or every N steps) the current encoder (``method.embed`` in eval
mode, its training flag restored after) embeds a fixed labelled subset of the
dataset's labelled train split, and a weighted kNN (csl_ext.eval.knn, k=20,
T=0.07 as in InstDisc [0]) classifies one part of it (the queries) from the
other (the memory bank). Bank and queries are disjoint, drawn once with the
run's seed, and held as uint8 images (500 images at 128 px: 25 MB).

- [0]: InstDisc, Wu et al. 2018, https://arxiv.org/abs/1805.01978
"""

import numpy as np
import torch

from csl_ext.eval.features import extract_features
from csl_ext.eval.knn import knn_accuracy

__all__ = ["KnnMonitor"]

BANK_FRACTION = 0.8  # e.g. 500 images: 400 in the bank, 100 queries


def _as_is(batch):
    return batch  # get_batch already returns (images, labels)


def _fetch(dataset, indices: np.ndarray, num_workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 3, S, S) images and labels of `indices`, decoded in parallel workers for folders."""
    batches = [indices[i : i + 64] for i in range(0, len(indices), 64)]
    if num_workers > 0 and hasattr(dataset, "paths"):
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=_as_is)
        parts = list(loader)
    else:
        parts = [dataset.get_batch(b) for b in batches]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


class KnnMonitor:
    """kNN accuracy of an encoder on a fixed labelled subset.

    Args:
        dataset: a labelled split with ``get_batch``, ``labels`` and ``len``
            (ImageArray or ImageFolder), fetched at the training image size.
        num_images: images drawn (80% bank, 20% queries); at most the labelled ones.
        seed: which images are drawn.
        k, temperature: of the weighted kNN.
        num_workers: decoding workers for folders.

    Raises:
        ValueError: fewer than 10 labelled images.
    """

    def __init__(
        self,
        dataset,
        num_images: int = 500,
        seed: int = 0,
        *,
        k: int = 20,
        temperature: float = 0.07,
        num_workers: int = 0,
    ):
        labelled = np.flatnonzero(np.asarray(dataset.labels) >= 0)
        if len(labelled) < 10:
            raise ValueError(
                f"the kNN monitor needs >= 10 labelled images, {getattr(dataset, 'name', 'the dataset')} "
                f"has {len(labelled)}; set knn_images=0 to turn it off"
            )
        pick = np.random.default_rng(seed).permutation(labelled)[:num_images]
        n_bank = int(round(len(pick) * BANK_FRACTION))
        self.bank_images, self.bank_labels = _fetch(dataset, np.sort(pick[:n_bank]), num_workers)
        self.query_images, self.query_labels = _fetch(dataset, np.sort(pick[n_bank:]), num_workers)
        self.k, self.temperature = k, temperature

    @torch.no_grad()
    def __call__(self, method: torch.nn.Module, device: torch.device, batch_size: int = 256) -> float:
        """kNN accuracy in [0, 1] of ``method``'s frozen features (method.embed,
        in eval mode; its training flag is restored)."""
        bank = extract_features(method, self.bank_images, batch_size=batch_size, device=device)
        queries = extract_features(method, self.query_images, batch_size=batch_size, device=device)
        return knn_accuracy(bank, self.bank_labels, queries, self.query_labels, k=self.k, temperature=self.temperature)
