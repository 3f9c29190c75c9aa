"""Caption fidelity on MNIST with captions: find each named digit in its slot and read it
(the method: :mod:`minidraw.fidelity`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import mnist_captions as mc
from ..data.mnist import DigitPools, digit_pools
from ..runtime import seeded
from .classifiers import CACHE_VERSION, DigitClassifier, _accuracy, _cached, _classifier_dir, _digest, _fit, _predict
from .result import FidelityResult, _check_images, _crops, _heldout_flags, _parse_all

DIGIT = mc.DIGIT   # 28
MNIST_TEMPLATE_NAMES = ("left of", "right of", "top of", "bottom of",
                        "top left corner", "top right corner", "bottom left corner", "bottom right corner")
DIGIT_BLURS = (0.0, 0.7, 1.2, 1.7)  # each training batch of digits is blurred by one of these (σ, pixels)


# ---- the digit classifier ------------------------------------------------------------------
def train_digit_classifier(pools: DigitPools | None = None, epochs: int = 6, seed: int = 0,
                           progress: bool = False) -> tuple[DigitClassifier, float]:
    """Train :class:`DigitClassifier` on ``pools.train_images`` (±2 pixel shifts, blurs), measure it on
    ``pools.test_images``: ``(model, test accuracy in [0, 1])``. About 20 s on one CPU thread."""
    pools = digit_pools() if pools is None else pools
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)[:, None]  # noqa: E731  (N, 1, 28, 28)
    x, y = to_x(pools.train_images), torch.from_numpy(pools.train_labels.astype(np.int64))
    with seeded(seed):                                                        # leave the caller's RNG alone
        model = _fit(DigitClassifier(), x, y, epochs, seed, shift=2, progress=progress, blurs=DIGIT_BLURS)
    acc = _accuracy(model, to_x(pools.test_images), torch.from_numpy(pools.test_labels.astype(np.int64)))
    return model, acc


def _digit_settings(epochs: int, seed: int) -> dict:
    return {"kind": "digits", "version": CACHE_VERSION, "epochs": epochs, "seed": seed, "blurs": list(DIGIT_BLURS)}


def digit_cache_file(pools: DigitPools, cache_dir: str | os.PathLike | None = None, epochs: int = 6,
                     seed: int = 0) -> Path:
    """Where :func:`digit_classifier` keeps the classifier of ``pools``: ``digits-<hash>.pt``, the hash
    of the settings (:data:`CACHE_VERSION` included) and the digits."""
    key = _digest(_digit_settings(epochs, seed), pools.train_images, pools.train_labels, pools.test_images,
                  pools.test_labels)
    return _classifier_dir(cache_dir) / f"digits-{key}.pt"


def digit_classifier(pools: DigitPools | None = None, cache_dir: str | os.PathLike | None = None,
                     retrain: bool = False, epochs: int = 6, seed: int = 0,
                     progress: bool = False) -> DigitClassifier:
    """The :class:`DigitClassifier` for ``pools`` (default :func:`digit_pools`), from the cache or trained.

    The file ``<cache_dir>/digits-<hash>.pt`` (default ``~/.cache/minidraw/classifiers``) is
    named by a hash of the digits and settings; ``model.accuracy`` is its test accuracy.
    """
    pools = digit_pools() if pools is None else pools
    settings = _digit_settings(epochs, seed)
    source = f"DigitClassifier trained on {len(pools.train_images)} digits; {pools.source}"
    return _cached(digit_cache_file(pools, cache_dir, epochs, seed), DigitClassifier,
                   lambda: train_digit_classifier(pools, epochs, seed, progress),
                   {"source": source, "settings": settings}, retrain)


# ---- MNIST with captions ------------------------------------------------------------------------
def _mnist_objects(parsed: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Templates ``(M,)``, named digits ``(M, 2)`` and their slots ``(M, 2)`` (-1: none)."""
    template = np.array([t for t, _, _ in parsed], dtype=np.int64).reshape(-1)
    digits = np.array([(d, e) for _, d, e in parsed], dtype=np.int64).reshape(-1, 2)
    slots = np.stack([template, np.where(digits[:, 1] >= 0, np.take(mc.PARTNER, template), -1)], 1)
    return template, digits, slots


def slot_regions(slots: np.ndarray, side: int = mc.CANVAS, jitter: int = 4) -> torch.Tensor:
    """Each named digit's share of the canvas, ``(M, K, B, A)`` float {0, 1}.

    A lone digit owns the whole canvas; of two, each owns the pixels nearer its slot's
    centre than its partner's (left / right of the middle column, or above / below the
    middle row), so that one digit's search never sees the other's ink.
    """
    centre = torch.from_numpy(mc.slot_corners(side, jitter) + (jitter + DIGIT - 1) / 2).float()  # (8, 2) y, x
    s = torch.from_numpy(slots)                                                # (M, K)
    c = centre[s.clamp_min(0)][..., None, None]                                # (M, K, 2, 1, 1)
    g = torch.arange(side, dtype=torch.float32)
    d2 = (g[:, None] - c[:, :, 0]) ** 2 + (g[None, :] - c[:, :, 1]) ** 2       # (M, K, B, A)
    own = d2 <= d2.flip(1)                                                     # nearer own centre than partner's
    alone = (s < 0).any(1)[:, None, None, None]                                # (M, 1, 1, 1) one digit
    return ((own | alone) & (s >= 0)[..., None, None]).float()


def _window_sums(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sums of every ``k`` × ``k`` window of ``x (N, C, B, A)``: ``(N, C, B-k+1, A-k+1)``, from an integral image."""
    s = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))                           # (N, C, B+1, A+1)
    return s[..., k:, k:] - s[..., :-k, k:] - s[..., k:, :-k] + s[..., :-k, :-k]


def find_digits(images: torch.Tensor, slots: np.ndarray, jitter: int = 4, search: int = 2,
                near_max: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each digit is: window corners ``(N, 2)`` (y, x), their ink ``(N,)`` and how far their
    ink's centre of mass is from the window's centre ``(N,)``, in pixels.

    ``images (N, 1, 60, 60)``, one digit's region each (:func:`slot_regions`), ``slots (N,)``
    the slot to search. Among the corners within the slot's jitter range widened by ``search``,
    those with ink >= ``near_max`` × the most, and of these the one whose centre of mass is
    nearest (14, 14).
    """
    side = images.shape[-1]
    n = side - DIGIT + 1                                                       # window positions per axis
    grid = torch.arange(side, dtype=torch.float32)
    stack = torch.cat([images, images * grid[:, None], images * grid[None, :]], 1)  # (N, 3, B, A): I, yI, xI
    sums = _window_sums(stack.double(), DIGIT).float()                        # (N, 3, n, n)
    ink = sums[:, 0]                                                           # (N, n, n)
    pos = torch.arange(n, dtype=torch.float32)
    com_y = sums[:, 1] / ink.clamp_min(1e-6) - pos[:, None]                    # (N, n, n) within the window
    com_x = sums[:, 2] / ink.clamp_min(1e-6) - pos[None, :]
    off = ((com_y - DIGIT / 2) ** 2 + (com_x - DIGIT / 2) ** 2).sqrt().flatten(1)  # (N, n*n)
    corner0 = torch.from_numpy(mc.slot_corners(side, jitter))[torch.from_numpy(slots)]  # (N, 2)
    lo = (corner0 - search).clamp(0, n - 1)[..., None, None]                   # (N, 2, 1, 1)
    hi = (corner0 + jitter + search).clamp(0, n - 1)[..., None, None]
    inside = ((pos[:, None] >= lo[:, 0]) & (pos[:, None] <= hi[:, 0])          # rows (N, n, 1)
              & (pos[None, :] >= lo[:, 1]) & (pos[None, :] <= hi[:, 1])).flatten(1)  # and columns: (N, n*n)
    ink = torch.where(inside, ink.flatten(1), torch.tensor(-1.0))              # (N, n*n)
    candidate = inside & (ink >= near_max * ink.max(1, keepdim=True).values)
    choice = torch.where(candidate, off, torch.tensor(float("inf"))).argmin(1, keepdim=True)  # (N, 1)
    corner = torch.cat([choice // n, choice % n], 1)                          # (N, 2)
    return corner.numpy(), ink.gather(1, choice)[:, 0].numpy(), off.gather(1, choice)[:, 0].numpy()


def mnist_fidelity(images, texts: Sequence[str], classifier: nn.Module, heldout=None, jitter: int = 4,
                   search: int = 2, min_ink: float = 15.0, max_offset: float = 4.0) -> FidelityResult:
    """Check generated MNIST-with-captions images ``(M, 1, 60, 60)`` in [0, 1] against ``texts``.

    ``classifier``: a :func:`digit_classifier`. ``heldout``: per-caption flags or a data
    set with ``is_heldout`` (e.g. the ``MnistCaptions`` the captions came from).
    ``details``: ``digit (M, 2)`` the digit read at each named place (-1: not named, too
    little ink, or off-centre), ``named_digit (M, 2)``, the classifier's ``confidence (M, 2)``,
    the window chosen: ``corner (M, 2, 2)`` (y, x), its ``ink (M, 2)`` and the ``offset (M, 2)``
    of its centre of mass from the window's centre. Memory: about 60 KB per caption.
    """
    images = _check_images(images, texts, 1, mc.CANVAS, "MNIST-with-captions")
    template, digits, slots = _mnist_objects(_parse_all(mc.parse_caption, texts, "MNIST-with-captions"))
    named = slots >= 0                                                         # (M, 2)
    rows, cols = np.nonzero(named)
    regions = images * slot_regions(slots, mc.CANVAS, jitter)                  # (M, 2, B, A)
    own = regions[rows, cols][:, None]                                         # (N, 1, B, A) one digit's share
    found, found_ink, found_off = find_digits(own, slots[rows, cols], jitter, search)
    corner = np.zeros((*named.shape, 2), dtype=np.int64)                       # (M, 2, 2) y, x
    ink, offset = np.zeros(named.shape), np.full(named.shape, np.inf)         # (M, 2)
    corner[rows, cols], ink[rows, cols], offset[rows, cols] = found, found_ink, found_off
    read = np.full(named.shape, -1, dtype=np.int64)
    conf = np.zeros(named.shape, dtype=np.float32)
    if len(rows):
        p, d = _predict(classifier, _crops(own, np.arange(len(rows)), found, DIGIT)).max(1)  # (N,)
        read[rows, cols], conf[rows, cols] = d.numpy(), p.numpy()
    read = np.where(named & (ink >= min_ink) & (offset <= max_offset), read, -1)
    per_object = named & (read == digits)
    correct = (per_object | ~named).all(1) & named.any(1)
    return FidelityResult("caption fidelity, MNIST with captions", list(texts), correct, per_object, named,
                          template, MNIST_TEMPLATE_NAMES, _heldout_flags(heldout, list(texts)),
                          {"digit": read, "confidence": conf, "ink": ink, "offset": offset, "corner": corner,
                           "named_digit": digits})


def mnist_oracle(scene_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Would a perfect checker accept ``texts[i]`` for the true scene ``scene_texts[i]`` describes? ``(M,)``.

    A caption holds when each (slot, digit) it names is in the scene ("3 left of 7"
    and "7 right of 3" are one scene). For the chance level of scrambled pairs.
    """
    def facts(text):
        t, d, e = mc.parse_caption(text)
        return {(t, d)} | ({(mc.PARTNER[t], e)} if e >= 0 else set())
    return np.array([facts(c) <= facts(s) for s, c in zip(scene_texts, texts)], dtype=bool)
