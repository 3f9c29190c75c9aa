"""MNIST with captions: the paper's toy data set, generated on the fly.

One or two MNIST digits (28×28) on a 60×60 black canvas, each in a *slot* with a
little random jitter, and a caption from one of 8 templates (the paper's
appendix)::

    the digit 3 is on the left of the digit 7 .     (3 in the left slot, 7 in the right)
    the digit 3 is on the right of the digit 7 .
    the digit 3 is at the top of the digit 7 .      (3 in the top slot, 7 in the bottom)
    the digit 3 is at the bottom of the digit 7 .
    the digit 3 is at the top left of the image .   (one digit, in a corner)
    ... top right / bottom left / bottom right

Every caption is 12 words from a 22-word closed vocabulary.

**Held-out compositions.** The paper holds some (template, digit) combinations
out of training to show the model drawing scenes it never saw. A caption's
wording can hide a scene, though: "3 is on the left of 7" and "7 is on the right
of 3" are the same picture. So we hold out *scene* facts: a set of (slot, digit)
pairs — template ``t`` puts its first digit in slot ``t`` — and no training image
ever has that digit in that slot, whichever template describes it. Hold-outs
are drawn from ``holdout_seed`` (one digit per slot, 8 of the 80 pairs) and
recorded on the data set.

**Validation compositions.** With ``validation=True`` a second set of 8 pairs (one
more digit per slot, :func:`choose_validation`) is withheld from training too.
Its scenes are the ``heldout-val`` split: every choice (settings, checkpoint,
seed) is made on them, and the ``heldout`` split is reported once, untouched.

**Splits.** ``train`` draws digits from the training pool and only scenes with no
held-out (or validation) pair; ``test`` draws digits from the test pool, seen
scenes only; ``heldout`` draws test digits and scenes with at least one held-out
pair; ``heldout-val`` test digits and scenes with a validation pair and no
held-out one.

**Determinism.** Example ``i`` is a pure function of (seed, split, i): every
random choice comes from :func:`minidraw.data.common.uniform`, so an "epoch" is
just a range of indices — nothing is stored, and batches are generated
vectorised, many thousands of images a second.
"""
from __future__ import annotations

import itertools
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from ..text import Vocabulary, tokenize
from .common import CaptionBatch, as_indices, item_index, randint, stream_key
from .mnist import DigitPools, digit_pools

CANVAS, DIGIT = 60, 28
# The paper's 22 tokens: 12 words, then the 10 digits.
VOCAB = Vocabulary.closed("the digit is on at left right bottom top of image .".split()
                          + [str(d) for d in range(10)])
TEMPLATES = (
    "the digit {d} is on the left of the digit {e} .",
    "the digit {d} is on the right of the digit {e} .",
    "the digit {d} is at the top of the digit {e} .",
    "the digit {d} is at the bottom of the digit {e} .",
    "the digit {d} is at the top left of the image .",
    "the digit {d} is at the top right of the image .",
    "the digit {d} is at the bottom left of the image .",
    "the digit {d} is at the bottom right of the image .",
)
SLOTS = ("left", "right", "top", "bottom", "top left", "top right", "bottom left", "bottom right")
# template t puts digit D in slot t and (two-digit templates) digit E in PARTNER[t]
PARTNER = (1, 0, 3, 2, -1, -1, -1, -1)
TWO_DIGITS = tuple(p >= 0 for p in PARTNER)
SPLITS = ("train", "test", "heldout", "heldout-val")


def slot_corners(canvas: int = CANVAS, jitter: int = 4) -> np.ndarray:
    """Top-left corner (y, x) of each slot before jitter: ``(8, 2)``.

    "near" is the canvas edge, "far" the opposite edge less a digit and the
    jitter, "mid" centres the digit; jitter then adds 0..jitter pixels.
    """
    near, far, mid = 0, canvas - DIGIT - jitter, (canvas - DIGIT - jitter) // 2
    return np.array([(mid, near), (mid, far), (near, mid), (far, mid),
                     (near, near), (near, far), (far, near), (far, far)])


def caption_text(template: int, d: int, e: int = -1) -> str:
    return TEMPLATES[template].format(d=d, e=e)


def parse_caption(text: str) -> tuple[int, int, int]:
    """(template, D, E) of a caption in the grammar (E = -1 for one digit).

    Unknown words raise :class:`~minidraw.text.UnknownWordError`; known words in
    an order no template has raise ``ValueError``.
    """
    VOCAB.encode(text)  # unknown words -> a clear error listing the vocabulary
    tokens = tokenize(text)
    for t, template in enumerate(TEMPLATES):
        pattern = template.split()
        if len(pattern) != len(tokens):
            continue
        slots = {p: tok for p, tok in zip(pattern, tokens) if p in ("{d}", "{e}")}
        rest_ok = all(p == tok for p, tok in zip(pattern, tokens) if p not in ("{d}", "{e}"))
        if rest_ok and all(v.isdigit() for v in slots.values()):
            return t, int(slots["{d}"]), int(slots.get("{e}", -1))
    raise ValueError(f"{text!r} is not an MNIST-with-captions caption; captions follow the templates:\n  "
                     + "\n  ".join(t.format(d="D", e="E") for t in TEMPLATES))


def scene_facts(text: str) -> frozenset[tuple[str, int]]:
    """What a caption says is in the picture, as ``{(slot, digit)}``: wording aside, "3 is on the left
    of 7" and "7 is on the right of 3" are the same scene, so they give the same facts. Captions
    outside the grammar raise like :func:`parse_caption`."""
    t, d, e = parse_caption(text)
    return frozenset([(SLOTS[t], d)] + ([(SLOTS[PARTNER[t]], e)] if e >= 0 else []))


def choose_heldout(holdout_seed: int = 0) -> frozenset[tuple[int, int]]:
    """One (slot, digit) pair per slot, eight different digits, drawn from ``holdout_seed``."""
    digits = np.random.default_rng(holdout_seed).permutation(10)[: len(SLOTS)]
    return frozenset((s, int(d)) for s, d in enumerate(digits))


def choose_validation(holdout_seed: int = 0) -> frozenset[tuple[int, int]]:
    """The validation pairs: one more (slot, digit) per slot, eight different digits, none of them the slot's
    held-out digit (slot ``s`` gets the permutation's digit ``s + 2`` where :func:`choose_heldout` takes ``s``)."""
    digits = np.random.default_rng(holdout_seed).permutation(10)[2: 2 + len(SLOTS)]
    return frozenset((s, int(d)) for s, d in enumerate(digits))


def _scene_tables(heldout: frozenset, split: str,
                  validation: frozenset = frozenset()) -> tuple[np.ndarray, np.ndarray]:
    """For each template, the (D, E) pairs the split may use: ``(8, 100, 2)`` and counts ``(8,)``."""
    table = np.zeros((len(TEMPLATES), 100, 2), dtype=np.int64)
    counts = np.zeros(len(TEMPLATES), dtype=np.int64)
    for t in range(len(TEMPLATES)):
        pairs = itertools.product(range(10), range(10)) if TWO_DIGITS[t] else ((d, -1) for d in range(10))
        keep = []
        for d, e in pairs:
            novel, val = ((t, d) in held or (TWO_DIGITS[t] and (PARTNER[t], e) in held)
                          for held in (heldout, validation))
            if {"heldout": novel, "heldout-val": val and not novel}.get(split, not (novel or val)):
                keep.append((d, e))
        counts[t] = len(keep)
        table[t, : len(keep)] = keep
    return table, counts


class MnistCaptions(Dataset):
    """Captioned 60×60 MNIST scenes, example ``i`` generated from (seed, split, i).

    ``pools`` are the digit images to draw from (:func:`digit_pools`; read from
    ``root`` when not given). ``length`` is one epoch (default: the pool's size);
    :meth:`batch` takes any index >= 0 — the stream is infinite — while
    ``dataset[i]`` keeps to ``[0, length)`` like any ``Dataset``. ``validation``: withhold the validation
    pairs from ``train`` and ``test`` too (implied by ``split="heldout-val"``).
    """

    endless = True  # an infinite stream: any index >= 0 is an example (the trainer relies on it)

    def __init__(self, split: str = "train", pools: DigitPools | None = None,
                 root: str | os.PathLike | None = None, seed: int = 0, holdout_seed: int = 0,
                 length: int | None = None, jitter: int = 4, validation: bool = False) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split, self.seed, self.holdout_seed, self.jitter = split, seed, holdout_seed, jitter
        self.validation = validation or split == "heldout-val"
        self.pools = digit_pools(root) if pools is None else pools
        images, labels = self.pools.split("train" if split == "train" else "test")
        order = np.argsort(labels, kind="stable")  # pool sorted by label: digit d is a contiguous run
        self.digit_images = torch.from_numpy(images[order].astype(np.float32) / 255.0)  # (n, 28, 28)
        self.digit_labels = labels[order]                          # (n,) sorted: 0 0 ... 9 9
        self._count = np.bincount(labels, minlength=10)            # (10,)
        self._start = np.concatenate([[0], np.cumsum(self._count)[:-1]])  # (10,)
        if (self._count == 0).any():
            raise ValueError(f"the {split} digit pool lacks digits {np.flatnonzero(self._count == 0).tolist()}")
        self.heldout = choose_heldout(holdout_seed)
        self.validation_pairs = choose_validation(holdout_seed) if self.validation else frozenset()
        self._table, self._per_template = _scene_tables(self.heldout, split, self.validation_pairs)
        self._templates = np.flatnonzero(self._per_template)  # templates with any scene in this split
        self._corners = slot_corners(CANVAS, jitter)
        self._key = stream_key(seed, SPLITS, split)             # one random stream per (seed, split)
        self._caption_ids = self._caption_table()
        self.length = length if length is not None else len(labels)
        self.vocab = VOCAB
        self.image_shape = (1, CANVAS, CANVAS)

    def _caption_table(self) -> np.ndarray:
        """Word ids of every (template, D, E) caption, ``(8, 10, 11, 12)`` (E index 10 = no E)."""
        ids = np.zeros((len(TEMPLATES), 10, 11, 12), dtype=np.int64)
        for t, d, e in itertools.product(range(len(TEMPLATES)), range(10), range(-1, 10)):
            ids[t, d, e] = VOCAB.encode(caption_text(t, d, max(e, 0)))
        return ids

    def __len__(self) -> int:
        return self.length

    def scenes(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The random choices behind examples ``index (M,)``: all integer arrays."""
        index = as_indices(index)
        k = self._key
        template = self._templates[randint(k, index, 0, len(self._templates))]      # (M,)
        digits = self._table[template, randint(k, index, 1, self._per_template[template])]  # (M, 2) D, E (-1: none)
        safe = np.maximum(digits, 0)
        instance = self._start[safe] + np.stack(                                     # (M, 2) rows of the
            [randint(k, index, 2 + j, self._count[safe[:, j]]) for j in range(2)], 1)  # label-sorted pool
        slots = np.stack([template, np.where(digits[:, 1] >= 0, np.take(PARTNER, template), -1)], 1)  # (M, 2)
        jitter = np.stack([randint(k, index, 4 + j, self.jitter + 1) for j in range(4)], 1).reshape(-1, 2, 2)
        corner = self._corners[np.maximum(slots, 0)] + jitter                       # (M, 2, 2) y, x
        return {"template": template, "digits": digits, "slots": slots, "instance": instance, "corner": corner}

    def render(self, scene: dict[str, np.ndarray]) -> torch.Tensor:
        """Paste each scene's digits into blank canvases: ``(M, 1, 60, 60)`` in [0, 1]."""
        n = len(scene["template"])
        canvas = torch.zeros(n, CANVAS, CANVAS)                                   # (M, B, A)
        offs = torch.arange(DIGIT)
        for j in range(2):
            present = torch.from_numpy(scene["digits"][:, j] >= 0)
            b = torch.arange(n)[present]
            ys = torch.from_numpy(scene["corner"][:, j, 0])[present]
            xs = torch.from_numpy(scene["corner"][:, j, 1])[present]
            rows = (ys[:, None] + offs)[:, :, None]                               # (b, 28, 1)
            cols = (xs[:, None] + offs)[:, None, :]                               # (b, 1, 28)
            digit = self.digit_images[torch.from_numpy(scene["instance"][:, j])[present]]  # (b, 28, 28)
            bb = b[:, None, None]
            canvas[bb, rows, cols] = torch.maximum(canvas[bb, rows, cols], digit)  # overlapping strokes: max
        return canvas[:, None]                                                    # (M, 1, B, A)

    def batch(self, index) -> CaptionBatch:
        """Examples ``index`` as one batch; the same index always gives the same example."""
        scene = self.scenes(index)
        t, d, e = scene["template"], scene["digits"][:, 0], scene["digits"][:, 1]
        captions = torch.from_numpy(self._caption_ids[t, d, e])                  # (M, 12); e=-1 -> last column
        lengths = torch.full((len(t),), captions.shape[1], dtype=torch.long)      # (M,)
        novel = self._novel(scene["slots"], scene["digits"])
        meta = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in scene.items()}
        meta["heldout"] = torch.from_numpy(novel)
        return CaptionBatch(self.render(scene), captions, lengths, meta)

    def __getitem__(self, i: int):
        b = self.batch([item_index(i, self.length)])
        return b.images[0], b.captions[0], int(b.lengths[0])

    def texts(self, index) -> list[str]:
        return self.batch(index).texts(self.vocab)

    def _novel(self, slots: np.ndarray, digits: np.ndarray) -> np.ndarray:
        """Which scenes ``(M, 2)`` put a digit in a slot withheld from training (held out, or for
        validation): ``(M,)`` bool."""
        held = np.zeros((len(SLOTS) + 1, 11), dtype=bool)  # row/column -1 = "no digit": never held out
        for s, d in self.heldout | self.validation_pairs:
            held[s, d] = True
        return (held[slots, digits]).any(1)

    def is_heldout(self, text: str) -> bool:
        """Does the scene this caption describes use a (slot, digit) pair withheld from training?"""
        t, d, e = parse_caption(text)
        return bool(self._novel(np.array([[t, PARTNER[t] if e >= 0 else -1]]), np.array([[d, e]]))[0])

    def describe_heldout(self) -> list[str]:
        """The held-out pairs in words, e.g. ``'digit 3 in the left slot'``."""
        return [f"digit {d} in the {SLOTS[s]} slot" for s, d in sorted(self.heldout)]

    def describe_validation(self) -> list[str]:
        """The validation pairs in words (empty without ``validation``)."""
        return [f"digit {d} in the {SLOTS[s]} slot" for s, d in sorted(self.validation_pairs)]
