"""Evaluation: the paper's retrieval and image-similarity measures.

**Retrieval** (the paper's image-retrieval table). For each test caption, rank a
candidate set of images — its own image and others drawn at random — by how
well the model explains each image given the caption, i.e. by the bound −L(x | y)
(lower is better). Report R@K, the percentage of captions whose own image ranks
in the top K, and the median rank. With 100 candidates, chance is R@K = K % and
median rank 50.

**SSI** (structural similarity, the paper's last column): the mean SSIM between
an image generated from a test caption and that caption's true image, computed
with scikit-image's maintained implementation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)


@dataclass(frozen=True)
class Retrieval:
    """R@K in percent and the median rank (1 = best) over the captions scored."""

    recall: dict[int, float]
    median_rank: float
    ranks: np.ndarray  # (Q,) the rank of each caption's own image, 1-based

    def row(self) -> str:
        return " ".join(f"R@{k} {v:5.1f}" for k, v in self.recall.items()) + f"  med r {self.median_rank:g}"


def ranks_of_truth(scores: np.ndarray | torch.Tensor, truth: int = 0) -> np.ndarray:
    """Rank (1-based) of candidate ``truth`` in each row of ``scores (Q, n)``, lower score = better.

    Ties count against the true image (it ranks below every candidate scoring the same),
    so a model that scores everything equally gets no credit.
    """
    s = _numpy(scores)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be (captions, candidates) with at least 2 candidates, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    own = s[:, truth:truth + 1]                                              # (Q, 1)
    better_or_tied = (s <= own).sum(1)                                       # counts the truth itself
    return better_or_tied.astype(np.int64)                                   # (Q,) in 1..n


def retrieval_metrics(scores, ks=(1, 5, 10, 50), truth: int = 0) -> Retrieval:
    """R@K (percent) and median rank from a score matrix ``(Q, n)``: column ``truth`` is the own image."""
    ranks = ranks_of_truth(scores, truth)
    recall = {k: 100.0 * float((ranks <= k).mean()) for k in ks}
    return Retrieval(recall, float(np.median(ranks)), ranks)


def ssi(generated, truth) -> float:
    """Mean SSIM between generated images and true images, both ``(M, C, B, A)`` in [0, 1]."""
    from skimage.metrics import structural_similarity
    g, t = _numpy(generated), _numpy(truth)
    if g.shape != t.shape or g.ndim != 4:
        raise ValueError(f"generated {g.shape} and true {t.shape} images must both be (M, C, B, A)")
    values = [structural_similarity(a, b, data_range=1.0, channel_axis=0) for a, b in zip(g, t)]
    return float(np.mean(values))
