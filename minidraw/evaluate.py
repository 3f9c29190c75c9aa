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


@torch.no_grad()
def retrieval_scores(model, dataset, n_queries: int = 100, n_candidates: int = 100, pool: int | None = None,
                     seed: int = 0, batch_size: int = 500) -> np.ndarray:
    """The bound −L(x | y) of each query caption with each of its candidate images: ``(Q, n)``.

    Query q is example q of ``dataset``; its candidates are its own image (column 0) and
    ``n − 1`` other examples drawn at random (seeded) from the first ``pool`` examples.
    All candidates of one caption share the same noise ε (common random numbers), so
    their bounds differ only because the images do.
    """
    pool = pool or max(n_queries, n_candidates)
    if pool < n_candidates:
        raise ValueError(f"a pool of {pool} examples cannot give {n_candidates} distinct candidates")
    rng = np.random.default_rng(seed)
    cand = np.empty((n_queries, n_candidates), dtype=np.int64)             # (Q, n) example indices
    for q in range(n_queries):
        others = rng.choice(np.delete(np.arange(pool), q) if q < pool else np.arange(pool),
                            n_candidates - 1, replace=False)
        cand[q] = np.concatenate([[q], others])
    images = dataset.batch(np.arange(pool)).images                           # (pool, C, B, A)
    queries = dataset.batch(np.arange(n_queries))                            # captions (Q, L)
    cfg = model.cfg
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_queries, cfg.T, cfg.z_size, generator=gen)           # one ε per caption
    flat_q = np.repeat(np.arange(n_queries), n_candidates)                   # (Q·n,)
    flat_c = cand.reshape(-1)
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(flat_q), batch_size):
        q, c = flat_q[i:i + batch_size], flat_c[i:i + batch_size]
        noise = eps[q].transpose(0, 1).contiguous().to(device)               # (T, m, z)
        bound = model(images[c].to(device), queries.captions[q].to(device), queries.lengths[q].to(device),
                      noise=noise).bound
        out.append(bound.float().cpu())
    model.train(was_training)
    return torch.cat(out).view(n_queries, n_candidates).numpy()
