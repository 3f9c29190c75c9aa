"""Evaluation: the paper's measures — bound, retrieval, SSI — and caption fidelity.

**The bound** (the paper's lower-bound table): −L in nats per image, averaged
over a split, with its standard error; and the tighter importance-weighted
estimate −L_K (Burda et al., 2016) from K posterior samples per image.

**Retrieval** (the paper's image-retrieval table). For each test caption (drawn
at random from the whole split), rank a candidate set of images — its own image
and 99 other *images* drawn at random, never another caption of its own image
(MS-COCO has five per image) — by how
well the model explains each image given the caption, i.e. by the bound −L(x | y)
(lower is better). Report R@K, the percentage of captions whose own image ranks
in the top K, and the median rank. With 100 candidates, chance is R@K = K % and
median rank 50.

**SSI** (structural similarity, the paper's last column): the mean SSIM between
an image generated from a test caption and that caption's true image, computed
with scikit-image's maintained implementation.

**Caption fidelity** (ours): does a picture generated from a caption show what
the caption says? Classifiers in :mod:`minidraw.fidelity` read each named object
at its named place; reported for seen and held-out compositions.

**The cycle** (ours): draw a picture from a caption, caption the picture with the
image-to-text captioner (:mod:`minidraw.captioner`), and compare the two captions.
For the closed grammars (MNIST with captions, captioned shapes) the comparison is
:func:`minidraw.captioner.agreement`: *exact*, the share of pictures whose caption
describes the same scene (wording aside), and *slots*, the share of the scene's facts
(an object and its place, the background) that agree. For MS-COCO it is corpus
BLEU-4 (``sacrebleu``: ``pip install "minidraw[coco]"``) against the captions the
pictures were drawn from. A perfect drawing scores what the captioner scores on real
pictures, so read the cycle beside the captioner's own accuracy: the cycle measures
the drawing only as far as the captioner reads well.

:func:`evaluate` computes a table row — any of ``bound``, ``iwae``,
``retrieval``, ``ssi``, ``fidelity``, ``cycle`` — for one model on its data splits
(:func:`splits_for` rebuilds them from a checkpoint); ``minidraw evaluate``
(:mod:`minidraw.cli`) runs it from the command line.
"""
from __future__ import annotations

import itertools
import math
import os
from contextlib import nullcontext
import time
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import torch

from .errors import UserError
from .models import kind_of, kind_of_config
from .runtime import eval_mode, evaluating  # noqa: F401 - the context every measure runs in (also minidraw.runtime)


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
    from .data.common import image_index
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
    eps = torch.randn(n_queries, cfg.T, cfg.z_size, generator=gen)           # one ε per caption
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
        se = v.std().item() / math.sqrt(len(v)) if len(v) > 1 else float("nan")
        return cls(v.mean().item(), se, len(v))

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.se:.2f}"


def _batches(data, n: int, batch_size: int) -> Iterable[tuple]:
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
    """−L_K in nats per image (K importance samples each): ≤ −L in expectation, → −log p(x) as K grows."""
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
    from .bound import bernoulli_nll
    out = []
    with evaluating(model, seed) as dev, eval_mode(sharpener):
        for images, captions, lengths in batches:
            images, captions, lengths = images.to(dev), captions.to(dev), lengths.to(dev)
            o = model(images, captions, lengths)
            sharp = sharpener.sharpen(torch.sigmoid(o.canvas.float()), captions, lengths)      # x̃
            logits = torch.logit(sharp).clamp(-SHARP_LOGIT, SHARP_LOGIT)
            out.append((bernoulli_nll(logits, images.float()) + o.kl.float().sum(1)).cpu())
    return torch.cat(out)


# ---- generation, SSI, fidelity -----------------------------------------------------------------
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
            drawn = model.generate(captions, lengths).images.float()
            if sharpener is not None:
                drawn = sharpener.sharpen(drawn, captions, lengths)
            out.append(drawn.cpu())
            truth.append(images)
    return torch.cat(out), torch.cat(truth)


def caption_fidelity(images: torch.Tensor, texts: list[str], dataset, classifiers=None):
    """Fidelity of ``images`` to ``texts`` with the checker that fits ``dataset`` (MNIST captions or
    shapes); its classifier comes from the cache folder ``classifiers`` (default ~/.cache/minidraw/classifiers)
    or is trained there."""
    from .data.mnist_captions import MnistCaptions
    from .data.shapes import ShapesCaptions
    from . import fidelity as F
    if isinstance(dataset, MnistCaptions):
        return F.mnist_fidelity(images, texts, F.digit_classifier(dataset.pools, cache_dir=classifiers))
    if isinstance(dataset, ShapesCaptions):
        return F.shapes_fidelity(images, texts, F.shape_classifier(cache_dir=classifiers))
    raise ValueError(f"caption fidelity is defined for MNIST with captions and captioned shapes, "
                     f"not {type(dataset).__name__}")


# ---- the cycle: caption -> picture -> caption --------------------------------------------------
SHIPPED_CAPTIONERS = {"MnistCaptions": "captioner-mnist", "ShapesCaptions": "captioner-shapes"}  # data set -> name


class MissingDependencyError(UserError, ImportError):
    """An optional package a measure needs is not installed; the message says what to install."""


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise MissingDependencyError('BLEU-4 (the cycle measure on MS-COCO) needs sacrebleu, which is not installed: '
                                     'pip install sacrebleu (or pip install "minidraw[coco]")') from None
    return sacrebleu


def bleu4(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU-4 (sacrebleu's, 0–100) of ``hypotheses``, one reference caption each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} captions but {len(references)} references")
    return float(_sacrebleu().corpus_bleu(list(hypotheses), [list(references)]).score)


def _captioner_names() -> str:
    from .pretrained import MODELS
    return ", ".join(n for n, m in MODELS.items() if m["kind"] == "captioner")


def load_captioner(spec: str | os.PathLike, map_location="cpu"):
    """``(captioner, vocabulary)`` from ``spec``: a shipped captioner's name (``captioner-mnist``,
    ``captioner-shapes``: :mod:`minidraw.pretrained`) or a captioner checkpoint's path. A
    ``ValueError`` (or the checkpoint's own error) that says what to give otherwise."""
    from . import pretrained
    from .checkpoint import load
    from .sample import vocabulary_for
    names = _captioner_names()
    if str(spec) in pretrained.MODELS:
        try:
            model, vocab = pretrained.load(str(spec), device=map_location, progress=False)
        except (ValueError, RuntimeError) as e:                              # not shipped, corrupt, offline
            raise ValueError(f"cannot load the pretrained captioner {spec}: {e}") from None
    else:
        if not os.path.exists(spec):
            raise ValueError(f"no captioner checkpoint at {spec}, and no pretrained captioner of that name: give a "
                             f"checkpoint of `minidraw train --config captioner-mnist` (or captioner-shapes) or a "
                             f"pretrained name ({names})")
        model, ckpt = load(spec, map_location=map_location)
        vocab = vocabulary_for(model, ckpt) if kind_of(model).name == "captioner" else None
    if kind_of(model).name != "captioner":
        raise ValueError(f"{spec} holds {kind_of(model).words}, not a captioner: give a captioner checkpoint "
                         f"(`minidraw train --config captioner-mnist --out DIR`) or a pretrained captioner ({names})")
    return model.float().to(map_location), vocab


def check_captioner_fits(captioner, vocab, dataset):
    """The vocabulary to caption ``dataset``'s pictures in; ``ValueError`` unless ``captioner`` reads
    pictures of the data's size and channels and writes captions in the data's vocabulary (``vocab``,
    the captioner's own, when known; else its size must be the data's)."""
    want = tuple(dataset.batch(np.arange(1)).images.shape[1:])              # (C, B, A)
    got = (captioner.cfg.C, captioner.cfg.B, captioner.cfg.A)
    hint = (f"use a captioner trained on the model's data (shipped: {_captioner_names()}; or train one with "
            "`minidraw train --config captioner-mnist`, captioner-shapes)")
    if tuple(want) != got:
        raise ValueError(f"the captioner reads {got[0]}×{got[1]}×{got[2]} (C×B×A) images, the model's data are "
                         f"{want[0]}×{want[1]}×{want[2]}: {hint}")
    words = dataset.vocab
    if vocab is None and captioner.cfg.vocab_size != len(words):
        raise ValueError(f"the captioner writes {captioner.cfg.vocab_size} word ids, the model's data has "
                         f"{len(words)} words: {hint}")
    if vocab is not None and tuple(vocab.words) != tuple(words.words):
        raise ValueError(f"the captioner writes captions in another vocabulary than the model's data: {hint}")
    return words


@torch.no_grad()
def caption_images(captioner, vocab, images: torch.Tensor, width: int = 1, batch_size: int = 250) -> list[str]:
    """``captioner``'s caption of each of ``images (M, C, B, A)`` in [0, 1] (greedy with ``width=1``)."""
    p = next(captioner.parameters())
    out: list[str] = []
    for lo in range(0, len(images), batch_size):
        out += captioner.caption(images[lo:lo + batch_size].to(p.device, p.dtype), vocab, width)
    return out


def _cycle_captioner(captioner, test, device):
    """``(captioner, vocabulary)`` for the cycle measure on the model's data (``test``: its test split):
    ``captioner`` as given (a Captioner, ``(Captioner, Vocabulary)``, a shipped name or a checkpoint's
    path) or, when ``None``, the one shipped for the data, checked to fit the data."""
    if captioner is None:
        name = SHIPPED_CAPTIONERS.get(type(test).__name__)
        if name is None:
            raise ValueError(f"no captioner is shipped for {type(test).__name__}: train one (`minidraw train --preset "
                             "captioner_coco_paper --out DIR`) and give it (--captioner CKPT; in Python, captioner=)")
        try:
            captioner = load_captioner(name, map_location=device)
        except ValueError as e:
            raise ValueError(f"the cycle measure needs a captioner, and the shipped one is not available ({e}); give "
                             f"one with --captioner CKPT (in Python, captioner=), trained with `minidraw train "
                             f"--config {name} --out DIR`") from None
    elif isinstance(captioner, (str, os.PathLike)):
        captioner = load_captioner(captioner, map_location=device)
    model, vocab = captioner if isinstance(captioner, tuple) else (captioner, None)
    if kind_of(model).name != "captioner":
        raise ValueError(f"the cycle measure needs a captioner (minidraw.captioner.Captioner), got a "
                         f"{type(model).__name__}")
    return model, check_captioner_fits(model, vocab, test)


# ---- a row of the table ------------------------------------------------------------------------
DEFAULT_METRICS = ("bound", "iwae", "retrieval", "ssi", "fidelity")
METRICS = DEFAULT_METRICS + ("cycle",)   # the cycle needs a captioner: asked for by name, never by default
LIKELIHOOD_METRICS = ("bound", "iwae", "retrieval")   # need log p(x | y): not for a GAN (the LAPGAN baseline)
NO_BOUND_METRICS = tuple(m for m in DEFAULT_METRICS if m not in LIKELIHOOD_METRICS)


@dataclass
class Sizes:
    """How many examples each measure uses (the chapter shrinks them on a CPU)."""

    bound: int = 2000       # images per split for −L
    iwae: int = 200         # images for −L_K
    K: int = 50             # importance samples
    queries: int = 200      # retrieval: captions, each against 100 candidates
    candidates: int = 100
    ssi: int = 500          # captions generated from for SSI
    fidelity: int = 500     # captions generated from, per split (seen and held out)


def _device_of(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def splits_for(train: dict, model_cfg, data: Optional[str] = None) -> dict:
    """The evaluation splits of a checkpoint's data: ``train``, ``test`` and, where the data has
    them, ``heldout`` compositions (MNIST with captions, shapes). ``train`` is the checkpoint's
    saved training settings."""
    from .configs import PRESETS
    from .data.select import evaluation_splits
    root = data if data is not None else (train.get("data") or None)
    name = str(train.get("preset", ""))
    data_set = (PRESETS[name].data if name in PRESETS else
                "mnist_captions" if kind_of_config(model_cfg).takes_caption else "mnist")
    return evaluation_splits(data_set, int(train.get("seed", 0)), root)


def evaluate(model, splits: dict, metrics: Iterable[str] = DEFAULT_METRICS, sizes: Sizes = Sizes(), seed: int = 0,
             progress: bool = False, classifiers=None, sharpener=None, captioner=None) -> dict:
    """One row of the evaluation table, as a flat dict of numbers.

    ``splits``: ``{"train": ..., "test": ..., "heldout": ...}`` (see :func:`splits_for`); measures
    that need captions are skipped for unconditional models. Keys: ``train_bound``,
    ``test_bound`` (and ``_se``), ``test_iwae`` (over the first ``sizes.iwae`` test images) and
    ``iwae_tightening`` (−L − (−L_K) on those same images), ``R@1`` … ``R@50``, ``med_r``, ``ssi``,
    ``fidelity_seen``, ``fidelity_heldout`` (percent; ``classifiers``: where the fidelity
    classifiers are cached), and ``seconds``. With a ``sharpener`` (:mod:`minidraw.sharpen`) the
    same measures are taken after sharpening too: ``test_bound_sharp`` (the paper's column,
    :func:`sharpened_bound_values`), ``ssi_sharp``, ``fidelity_seen_sharp``, ``fidelity_heldout_sharp``.

    ``cycle`` (asked for by name; not in :data:`DEFAULT_METRICS`): the pictures fidelity draws (the
    first ``sizes.fidelity`` captions of each split, the same seed) captioned by ``captioner`` —
    a :class:`~minidraw.captioner.Captioner`, ``(Captioner, Vocabulary)`` as
    :func:`minidraw.pretrained.load` gives, a shipped captioner's name or a checkpoint's path; by
    default the one shipped for the data — greedily, and scored against the captions they were
    drawn from: ``cycle_exact_seen``, ``cycle_slots_seen``, ``cycle_exact_heldout``,
    ``cycle_slots_heldout`` (percent, :func:`minidraw.captioner.agreement`), or ``cycle_bleu_seen``
    (corpus BLEU-4, 0–100) for MS-COCO; with a sharpener also their ``_sharp`` variants.
    """
    metrics = list(metrics)
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    no_likelihood = sorted(set(metrics) & set(LIKELIHOOD_METRICS)) if not kind_of(model).has_bound else []
    if no_likelihood:
        raise ValueError(f"{type(model).__name__} has no likelihood (a GAN), so no {', '.join(no_likelihood)}: "
                         f"measure it with {', '.join(NO_BOUND_METRICS)} (and cycle)")
    captioned = not isinstance(splits["test"], torch.Tensor)
    row: dict = {}
    start = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    reader = None
    if captioned and "cycle" in metrics:                                 # a missing captioner fails before any work
        reader, words = _cycle_captioner(captioner, splits["test"], _device_of(model))
        from .captioner import facts_for
        facts = facts_for(words)
        if facts is None:
            _sacrebleu()
    if "bound" in metrics:
        for name in ("train", "test"):
            e = bound(model, splits[name], sizes.bound, seed=seed)
            row[f"{name}_bound"], row[f"{name}_bound_se"] = e.mean, e.se
            say(f"{name} −L = {e} nats ({e.n} images)")
        if sharpener is not None:
            e = Estimate.of(sharpened_bound_values(model, sharpener, _batches(splits["test"], sizes.bound, 500), seed))
            row["test_bound_sharp"], row["test_bound_sharp_se"] = e.mean, e.se
            say(f"test −L after sharpening = {e} nats")
    if "iwae" in metrics:
        e = iwae(model, splits["test"], sizes.iwae, sizes.K, seed=seed)
        same = bound(model, splits["test"], sizes.iwae, seed=seed)                # −L on the same images
        row["test_iwae"], row["test_iwae_se"], row["iwae_tightening"] = e.mean, e.se, same.mean - e.mean
        say(f"test −L_{sizes.K} = {e} nats ({e.n} images; {same.mean - e.mean:.2f} below their −L)")
    if captioned and "retrieval" in metrics:
        test = splits["test"]
        r = retrieval_metrics(retrieval_scores(model, test, min(sizes.queries, len(test)), sizes.candidates,
                                               seed=seed))
        row.update({f"R@{k}": v for k, v in r.recall.items()}, med_r=r.median_rank)
        say(f"retrieval over {sizes.queries} captions: {r.row()}")
    sharpeners = {"": None} if sharpener is None else {"": None, "_sharp": sharpener}
    drawings: dict = {}

    def drawn(name: str, suffix: str, sh) -> torch.Tensor:
        """The pictures drawn from split ``name``'s first ``sizes.fidelity`` captions (fidelity and the cycle
        score the same ones)."""
        if (name, suffix) not in drawings:
            drawings[name, suffix] = generate(model, splits[name], sizes.fidelity, seed=seed, sharpener=sh)[0]
        return drawings[name, suffix]

    if captioned and "ssi" in metrics:
        for suffix, sh in sharpeners.items():
            generated, truth = generate(model, splits["test"], sizes.ssi, seed=seed, sharpener=sh)
            row["ssi" + suffix] = ssi(generated, truth)
            say(f"SSI{' after sharpening' if sh is not None else ''} over {len(truth)} captions: "
                f"{row['ssi' + suffix]:.3f}")
    if captioned and "fidelity" in metrics:
        for (name, key), (suffix, sh) in itertools.product((("test", "fidelity_seen"), ("heldout", "fidelity_heldout")),
                                                           sharpeners.items()):
            if name not in splits:
                continue
            data = splits[name]
            generated = drawn(name, suffix, sh)
            result = caption_fidelity(generated, data.texts(np.arange(len(generated))), data, classifiers)
            row[key + suffix] = result.rate                                    # percent
            row[f"{key}{suffix}_by_template"] = result.by_template()
            say(f"fidelity, {name} captions{' after sharpening' if sh is not None else ''}: {row[key + suffix]:.1f} %")
    if reader is not None:
        from .captioner import agreement
        for (name, key), (suffix, sh) in itertools.product((("test", "seen"), ("heldout", "heldout")),
                                                           sharpeners.items()):
            if name not in splits:
                continue
            generated = drawn(name, suffix, sh)
            truth = splits[name].texts(np.arange(len(generated)))
            said = caption_images(reader, words, generated)
            after = " after sharpening" if sh is not None else ""
            if facts is None:
                row[f"cycle_bleu_{key}{suffix}"] = bleu4(said, truth)
                say(f"cycle, {name} captions{after}: BLEU-4 {row[f'cycle_bleu_{key}{suffix}']:.1f}")
                continue
            exact, slots = agreement(said, truth, facts)
            row[f"cycle_exact_{key}{suffix}"] = 100 * exact.float().mean().item()
            row[f"cycle_slots_{key}{suffix}"] = 100 * slots.float().mean().item()
            say(f"cycle, {name} captions{after}: {row[f'cycle_exact_{key}{suffix}']:.1f} % the same scene, "
                f"{row[f'cycle_slots_{key}{suffix}']:.1f} % of its facts")
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


COLUMNS = (("train_bound", "train −L", "{:.1f}"), ("test_bound", "test −L", "{:.1f}"),
           ("test_bound_sharp", "test −L after sharpening", "{:.1f}"),
           ("test_iwae", "test −L_K", "{:.1f}"), ("iwae_tightening", "−L − (−L_K)", "{:.1f}"), ("R@1", "R@1", "{:.1f}"), ("R@5", "R@5", "{:.1f}"),
           ("R@10", "R@10", "{:.1f}"), ("R@50", "R@50", "{:.1f}"), ("med_r", "med r", "{:g}"),
           ("ssi", "SSI", "{:.3f}"), ("ssi_sharp", "SSI sharpened", "{:.3f}"),
           ("fidelity_seen", "fidelity seen %", "{:.1f}"), ("fidelity_heldout", "fidelity held-out %", "{:.1f}"),
           ("fidelity_seen_sharp", "fidelity seen, sharpened %", "{:.1f}"),
           ("fidelity_heldout_sharp", "fidelity held-out, sharpened %", "{:.1f}"),
           ("cycle_exact_seen", "cycle exact seen %", "{:.1f}"), ("cycle_slots_seen", "cycle slots seen %", "{:.1f}"),
           ("cycle_exact_heldout", "cycle exact held-out %", "{:.1f}"),
           ("cycle_slots_heldout", "cycle slots held-out %", "{:.1f}"),
           ("cycle_exact_seen_sharp", "cycle exact seen, sharpened %", "{:.1f}"),
           ("cycle_slots_seen_sharp", "cycle slots seen, sharpened %", "{:.1f}"),
           ("cycle_exact_heldout_sharp", "cycle exact held-out, sharpened %", "{:.1f}"),
           ("cycle_slots_heldout_sharp", "cycle slots held-out, sharpened %", "{:.1f}"),
           ("cycle_bleu_seen", "cycle BLEU-4", "{:.1f}"), ("cycle_bleu_seen_sharp", "cycle BLEU-4, sharpened", "{:.1f}"))


def markdown_table(rows: dict[str, dict], columns=COLUMNS) -> str:
    """``{model name: row}`` as a Markdown table; columns no row has are left out, blanks are "–"."""
    cols = [c for c in columns if any(c[0] in r for r in rows.values())]
    lines = ["| model | " + " | ".join(title for _, title, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = [fmt.format(r[key]) if key in r and r[key] is not None else "–" for key, _, fmt in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
