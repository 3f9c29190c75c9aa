"""The paper's measures on a data split: the bound, image retrieval and SSI.

**The bound** (the paper's lower-bound table): −L in nats per image, averaged
over a split, with its standard error; and the tighter importance-weighted
estimate −L_K (Burda et al., 2016) from K posterior samples per image. With a
sharpener, the paper's "after sharpening" variant (:func:`sharpened_bound_values`).

**Retrieval** (the paper's image-retrieval table). For each test caption (drawn
at random from the whole split), rank a candidate set of images — its own image
and 99 other *images* drawn at random, never another caption of its own image
(MS-COCO has five per image) — by how well the model explains each image given
the caption, i.e. by the bound −L(x | y) (lower is better). Report R@K, the
percentage of captions whose own image ranks in the top K, and the median rank.
With 100 candidates, chance is R@K = K % and median rank 50.

**SSI** (structural similarity, the paper's last column): the mean SSIM between
an image generated from a test caption (:func:`generate`) and that caption's
true image, computed with scikit-image's maintained implementation.

Every measure runs in eval mode with its own noise stream (:func:`minidraw.runtime.evaluating`),
so the caller's random state is left as it was. :func:`minidraw.evaluate.evaluate` puts
them in a table row.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from .bound import bernoulli_nll
from .data.common import image_index
from .runtime import eval_mode, evaluating


def _numpy(a) -> np.ndarray:
    """``a`` (a tensor or an array-like) as a float64 NumPy array."""
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)


# ---- the bound on a split ----------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` examples and its standard error."""

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, values: torch.Tensor) -> "Estimate":
        v = values.detach().double().cpu()
        se = v.std().item() / math.sqrt(len(v)) if len(v) > 1 else float("nan")   # s / √n
        return cls(v.mean().item(), se, len(v))

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.se:.2f}"


def _batches(data, n: int, batch_size: int) -> Iterator[tuple]:
    """The first ``n`` examples of a data set (or a tensor of images) as the model's arguments."""
    n = min(n, len(data))
    for i in range(0, n, batch_size):
        idx = np.arange(i, min(n, i + batch_size))
        if isinstance(data, torch.Tensor):
            yield (data[torch.from_numpy(idx)],)
        else:
            b = data.batch(idx)
            yield (b.images, b.captions, b.lengths)


@torch.no_grad()
def bound_values(model, batches: Iterable[tuple], seed: int = 0) -> torch.Tensor:
    """−L of every image in ``batches`` (tuples of the model's arguments), ``(n,)``, in eval mode,
    with the noise stream of ``seed``; the caller's random state is left as it was."""
    with evaluating(model, seed) as dev:
        return torch.cat([model(*(a.to(dev) for a in b)).bound.float().cpu() for b in batches])


def bound(model, data, n: int = 1000, batch_size: int = 500, seed: int = 0) -> Estimate:
    """−L in nats per image over the first ``n`` examples of ``data`` (one sample of z each)."""
    return Estimate.of(bound_values(model, _batches(data, n, batch_size), seed))


@torch.no_grad()
def iwae(model, data, n: int = 200, K: int = 50, seed: int = 0, images_per_pass: int = 1000) -> Estimate:
    """−L_K in nats per image (K importance samples each): ≤ −L in expectation, → −log p(x) as K grows.

    The estimate, with z_k ~ q(z | x)::

        −L_K = −log (1/K) Σ_k p(x, z_k) / q(z_k | x)
    """
    per = max(1, images_per_pass // K)                                       # images per pass: K copies each
    with evaluating(model, seed) as dev:
        values = torch.cat([model.iwae(*(a.to(dev) for a in b), K=K).float().cpu()
                            for b in _batches(data, n, per)])
    return Estimate.of(values)


SHARP_LOGIT = 10.0  # sharpened pixels are clipped to [σ(−10), σ(10)] before their log-likelihood


@torch.no_grad()
def sharpened_bound_values(model, sharpener, batches: Iterable[tuple], seed: int = 0) -> torch.Tensor:
    """The paper's "after sharpening" bound of every image, ``(n,)`` nats: the KL terms as they are,
    the reconstruction term recomputed with the sharpened final canvas as the pixels' means::

        −L_sharp = −log p(x | x̃) + Σ_t KL_t,     x̃ = sharpen(σ(c_T), y)

    (x̃ clipped to [σ(−10), σ(10)], so a confident wrong pixel costs at most 10 nats). It is not a
    bound on −log p(x) — the sharpener is not part of the model — but it says whether the edges
    the sharpener adds are where the images' edges are."""
    out = []
    with evaluating(model, seed) as dev, eval_mode(sharpener):
        for images, captions, lengths in batches:
            images, captions, lengths = images.to(dev), captions.to(dev), lengths.to(dev)
            o = model(images, captions, lengths)
            sharp = sharpener.sharpen(torch.sigmoid(o.canvas.float()), captions, lengths)      # x̃ (M, C, B, A)
            logits = torch.logit(sharp).clamp(-SHARP_LOGIT, SHARP_LOGIT)
            out.append((bernoulli_nll(logits, images.float()) + o.kl.float().sum(1)).cpu())   # (M,)
    return torch.cat(out)


def sharpened_bound(model, sharpener, data, n: int = 1000, batch_size: int = 500, seed: int = 0) -> Estimate:
    """:func:`sharpened_bound_values` over the first ``n`` examples of ``data``: its mean and standard error."""
    return Estimate.of(sharpened_bound_values(model, sharpener, _batches(data, n, batch_size), seed))


# ---- retrieval ---------------------------------------------------------------------------------
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
    recall = {k: 100.0 * float((ranks <= k).mean()) for k in ks}            # R@K = 100 · #{rank ≤ K} / Q
    return Retrieval(recall, float(np.median(ranks)), ranks)


def retrieval_candidates(dataset, n_queries: int, n_candidates: int = 100, pool: int | None = None,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Query captions and their candidate images, as example indices: ``(Q,)`` and ``(Q, n)``.

    The queries are ``n_queries`` distinct examples drawn at random (seeded) from the whole
    split (or its first ``pool`` examples). Column 0 of a query's candidates is the query itself,
    i.e. its own image; the other ``n − 1`` are other *images*, distinct, drawn at random without
    the query's image — in MS-COCO, where an image has five captions, none of them is another
    caption of the query's own image (:func:`minidraw.data.common.image_index`). Each candidate
    image is named by one example that shows it.
    """
    pool = len(dataset) if pool is None else min(pool, len(dataset))
    if not 0 < n_queries <= pool:
        raise ValueError(f"cannot draw {n_queries} query captions from {pool} examples")
    shown = image_index(dataset, np.arange(pool))                              # (pool,) image of each example
    images, first = np.unique(shown, return_index=True)                        # each image once, and an example of it
    if len(images) < n_candidates:
        raise ValueError(f"{len(images)} distinct images cannot give {n_candidates} distinct candidates")
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(pool, n_queries, replace=False))              # (Q,) spread over the split
    own = np.searchsorted(images, shown[queries])                              # (Q,) each query's image
    cand = np.empty((n_queries, n_candidates), dtype=np.int64)                 # (Q, n) example indices
    cand[:, 0] = queries
    for q in range(n_queries):
        others = rng.choice(len(images) - 1, n_candidates - 1, replace=False)  # images but the query's own:
        cand[q, 1:] = first[others + (others >= own[q])]                       # skip over its position
    return queries, cand


@torch.no_grad()
def retrieval_scores(model, dataset, n_queries: int = 100, n_candidates: int = 100, pool: int | None = None,
                     seed: int = 0, batch_size: int = 500) -> np.ndarray:
    """The bound −L(x | y) of each query caption with each of its candidate images: ``(Q, n)``.

    Queries and candidates come from :func:`retrieval_candidates` (column 0: the query's own
    image; then ``n − 1`` other images, drawn at random from the whole split, or its first
    ``pool`` examples). All candidates of one caption share the same noise ε (common random
    numbers), so for a given seed the ranking is a function of the images alone and reproducible
    (the evaluation chapter measures that it is not less noisy than independent ε).
    """
    queries, cand = retrieval_candidates(dataset, n_queries, n_candidates, pool, seed)
    captions = dataset.batch(queries)                                          # captions (Q, L)
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_queries, cfg.T, cfg.z_size, generator=gen)           # (Q, T, z) one ε per caption
    flat_q = np.repeat(np.arange(n_queries), n_candidates)                   # (Q·n,) row of each pair
    flat_c = cand.reshape(-1)                                                # (Q·n,) candidate example
    out = []
    with evaluating(model, seed) as device:
        for i in range(0, len(flat_q), batch_size):
            q, c = flat_q[i:i + batch_size], flat_c[i:i + batch_size]
            noise = eps[q].transpose(0, 1).contiguous().to(device)           # (T, m, z)
            bound = model(dataset.batch(c).images.to(device), captions.captions[q].to(device),
                          captions.lengths[q].to(device), noise=noise).bound
            out.append(bound.float().cpu())
    return torch.cat(out).view(n_queries, n_candidates).numpy()


# ---- generation and SSI ------------------------------------------------------------------------
@torch.no_grad()
def generate(model, dataset, n: int = 500, seed: int = 0, batch_size: int = 500,
             sharpener=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One image generated from each of the first ``n`` captions, and the captions' true images.

    Returns ``(generated, truth)``, both ``(n, C, B, A)`` in [0, 1]; the generated image is the
    mean σ(c_T) of the Bernoulli pixels, as the paper shows them — sharpened by ``sharpener``
    (a :class:`~minidraw.sharpen.Sharpener`, given each image's caption) when one is given.
    """
    out, truth = [], []
    with evaluating(model, seed) as dev, (eval_mode(sharpener) if sharpener is not None else nullcontext()):
        for images, captions, lengths in _batches(dataset, n, batch_size):
            captions, lengths = captions.to(dev), lengths.to(dev)
            drawn = model.generate(captions, lengths).images.float()         # (m, C, B, A) σ(c_T)
            if sharpener is not None:
                drawn = sharpener.sharpen(drawn, captions, lengths)
            out.append(drawn.cpu())
            truth.append(images)
    return torch.cat(out), torch.cat(truth)


def ssi(generated, truth) -> float:
    """Mean SSIM between generated images and true images, both ``(M, C, B, A)`` in [0, 1]."""
    from skimage.metrics import structural_similarity
    g, t = _numpy(generated), _numpy(truth)
    if g.shape != t.shape or g.ndim != 4:
        raise ValueError(f"generated {g.shape} and true {t.shape} images must both be (M, C, B, A)")
    values = [structural_similarity(a, b, data_range=1.0, channel_axis=0) for a, b in zip(g, t)]
    return float(np.mean(values))
