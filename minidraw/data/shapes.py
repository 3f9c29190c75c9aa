"""Captioned shapes: a procedurally generated colour data set with held-out compositions.

Not in the paper. COCO needs GPU-days before alignDRAW draws anything
recognisable; this data set lets every qualitative experiment of the paper —
novel compositions, flipping colours, flipping backgrounds, flipping objects — be
trained and shown on a laptop CPU in minutes. A scene is one or two objects on a
plain background, drawn at 32×32 RGB by default::

    a large red circle is at the top left on a white background .
    a small blue square is on the left of a large yellow triangle on a black background .

An object is a size (small, large), a colour (6) and a shape (circle, square,
triangle). One object sits at a *position* (four corners or the middle); two
objects stand in a *relation* (on the left of, on the right of, above, below) —
side by side or stacked, never overlapping. Every caption comes from that
grammar, in a closed vocabulary of 30 words (31 ids with ``<pad>``).

**Modules.** The world — the attribute tables, :class:`~minidraw.data.shapes_scene.Scene`
and the layout — is :mod:`minidraw.data.shapes_scene`; the drawing
:mod:`minidraw.data.shapes_render`; the captions, written and read,
:mod:`minidraw.data.shapes_grammar`. This module holds the held-out pairs and the
data set, :class:`ShapesCaptions`.

**Held-out compositions.** ``holdout_seed`` picks one colour per shape (three
different colours): those (shape, colour) pairs never appear on *any* object of
a ``train`` (or ``test``) image. ``heldout`` images have at least one. With
``validation=True`` a second colour per shape (:func:`validation_pairs`) is
withheld from training as well; the ``heldout-val`` split puts one of those on an
object (and no held-out pair anywhere): every choice is made on it, and
``heldout`` is reported once. Object
attributes are drawn from tables of the allowed pairs, so no sampling is ever
rejected and retried.

**Determinism.** Example ``i`` is a pure function of (seed, split, i): every random
choice comes from :func:`minidraw.data.common.uniform`, so the same index gives
the same image and caption in whatever batch it is asked for. Sampling, layout,
rendering and caption assembly are vectorised over the batch (loops run over the
two object slots and three shapes only).

Shape comments use the book's symbols: ``M`` scenes, images
``B × A`` pixels (height × width; here ``A = B = size``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .common import CaptionBatch, as_indices, item_index, randint, stream_key, uniform
from .shapes_grammar import MAX_LEN, VOCAB, caption_ids, caption_texts, scene_from_caption
from .shapes_render import render
from .shapes_scene import BACKGROUNDS, COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, Scene, layout

SPLITS = ("train", "test", "heldout", "heldout-val")


# ---- the picture of any caption -------------------------------------------------
def render_caption(text: str, size: int = 32) -> torch.Tensor:
    """Ground truth for any caption of the grammar: ``(3, size, size)``. For the flipping
    experiments: change a colour, background or shape word and draw what it now says."""
    return render(scene_from_caption(text), size)[0]


# ---- held-out pairs and the data set -----------------------------------------------
def _colour_order(holdout_seed: int) -> np.ndarray:
    return np.argsort(uniform(holdout_seed, np.arange(len(COLOURS)), 0xC0105), kind="stable")


def heldout_pairs(holdout_seed: int = 0) -> tuple[tuple[str, str], ...]:
    """One (shape, colour) pair per shape, three different colours, drawn from ``holdout_seed``."""
    perm = _colour_order(holdout_seed)
    return tuple((shape, COLOURS[perm[s]]) for s, shape in enumerate(SHAPES))


def validation_pairs(holdout_seed: int = 0) -> tuple[tuple[str, str], ...]:
    """The validation pairs: one more colour per shape, the three colours :func:`heldout_pairs` left."""
    perm = _colour_order(holdout_seed)
    return tuple((shape, COLOURS[perm[len(SHAPES) + s]]) for s, shape in enumerate(SHAPES))


def _pair_table(chosen) -> np.ndarray:
    """``(3, 6)`` bool: is (shape, colour) one of ``chosen``?"""
    table = np.zeros((len(SHAPES), len(COLOURS)), dtype=bool)
    for s, c in chosen:
        table[SHAPES.index(s), COLOURS.index(c)] = True
    return table


class ShapesCaptions(Dataset):
    """Captioned shape scenes, example ``i`` generated from (seed, split, i).

    ``split``: ``train`` and ``test`` (different random streams, so different
    images) use only (shape, colour) pairs outside :attr:`heldout`; ``heldout``
    puts a held-out pair on at least one object; ``heldout-val`` a validation pair (``validation``: withhold
    :func:`validation_pairs` from ``train`` and ``test`` too; implied by that split). ``length`` is one epoch
    (default 50,000 train, 10,000 test/heldout); ``size`` the canvas side in pixels.
    For training call :meth:`batch` with a batch of indices: it is vectorised.
    """

    endless = True  # an infinite stream: any index >= 0 is an example (the trainer relies on it)

    DEFAULT_LENGTH = {"train": 50_000, "test": 10_000, "heldout": 10_000, "heldout-val": 10_000}

    def __init__(self, split: str = "train", seed: int = 0, holdout_seed: int = 0,
                 length: int | None = None, size: int = 32, validation: bool = False) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels for the shapes to be recognisable, got {size}")
        self.split, self.seed, self.holdout_seed, self.size = split, seed, holdout_seed, size
        self.length = self.DEFAULT_LENGTH[split] if length is None else int(length)
        self.vocab, self.max_len, self.image_shape = VOCAB, MAX_LEN, (3, size, size)
        self.validation = validation or split == "heldout-val"
        self._heldout = heldout_pairs(holdout_seed)
        self.validation_pairs = validation_pairs(holdout_seed) if self.validation else ()
        reported, val = _pair_table(self._heldout), _pair_table(self.validation_pairs)
        self._held = reported | val                                       # (3, 6) withheld from training?
        pairs = np.array([(s, c) for s in range(len(SHAPES)) for c in range(len(COLOURS))])  # (18, 2)
        is_reported, is_val = reported[pairs[:, 0], pairs[:, 1]], val[pairs[:, 0], pairs[:, 1]]
        self._seen = pairs[~(is_reported | is_val)]                       # (15 or 12, 2)
        # the pair in slot h, and what the other slot may hold
        self._novel, self._all = ((pairs[is_val], pairs[~is_reported]) if split == "heldout-val" else
                                  (pairs[is_reported], pairs))
        self._key = stream_key(seed, SPLITS, split)                       # one random stream per (seed, split)

    @property
    def heldout(self) -> tuple[tuple[str, str], ...]:
        """The held-out (shape, colour) pairs, e.g. ``(('circle', 'blue'), ...)``."""
        return self._heldout

    def describe_heldout(self) -> list[str]:
        """The held-out pairs in words, e.g. ``'magenta circle'``."""
        return [f"{c} {s}" for s, c in self._heldout]

    def describe_validation(self) -> list[str]:
        """The validation pairs in words (empty without ``validation``)."""
        return [f"{c} {s}" for s, c in self.validation_pairs]

    def __len__(self) -> int:
        return self.length

    def scenes(self, indices) -> Scene:
        """The random scenes behind examples ``indices`` (no drawing: cheap)."""
        i, k = as_indices(indices), self._key
        n_objects = 1 + (uniform(k, i, 0) >= 0.5)                    # (M,) 1 or 2, evenly
        if self.split.startswith("heldout"):                          # slot h gets a held-out pair,
            h = np.where(n_objects == 1, 0, randint(k, i, 1, 2))      # the other slot any pair
            novel = self._novel[randint(k, i, 2, len(self._novel))]   # (M, 2)
            other = self._all[randint(k, i, 3, len(self._all))]
            pair = np.stack([np.where(h[:, None] == 0, novel, other), np.where(h[:, None] == 0, other, novel)], 1)
        else:
            pair = np.stack([self._seen[randint(k, i, 2 + j, len(self._seen))] for j in range(2)], 1)  # (M, 2, 2)
        size = np.stack([randint(k, i, 4 + j, len(SIZES)) for j in range(2)], 1)  # (M, 2)
        background = randint(k, i, 6, len(BACKGROUNDS))
        relation = randint(k, i, 7, len(RELATIONS))
        position = randint(k, i, 8, len(POSITIONS))
        jitter = np.stack([uniform(k, i, 9 + j) for j in range(4)], 1).reshape(-1, 2, 2)  # (M, 2, 2)
        single = n_objects == 1
        gone = np.stack([np.zeros_like(single), single], 1)          # (M, 2) absent slot
        relation, position = np.where(single, -1, relation), np.where(single, position, -1)
        x, y = layout(size, n_objects, relation, position, jitter)
        return Scene(shape=np.where(gone, -1, pair[..., 0]), colour=np.where(gone, -1, pair[..., 1]),
                     size=np.where(gone, -1, size), x=x, y=y, background=background,
                     n_objects=n_objects.astype(np.int64), relation=relation, position=position)

    def _is_novel(self, scene: Scene) -> np.ndarray:
        """Which scenes ``(M,)`` have an object with a (shape, colour) pair withheld from training."""
        held = self._held[np.maximum(scene.shape, 0), np.maximum(scene.colour, 0)] & (scene.shape >= 0)
        return held.any(1)

    def batch(self, indices) -> CaptionBatch:
        """Examples ``indices`` as one batch, captions padded to ``MAX_LEN``.

        ``meta``: per object ``(M, 2)`` ``shape``, ``colour``, ``size``, ``x``, ``y``,
        ``radius`` (pixels); per scene ``(M,)`` ``background``, ``n_objects``,
        ``relation``, ``position`` (-1 where not applicable), ``heldout`` (bool) and ``index``.
        """
        i = as_indices(indices)
        scene = self.scenes(i)
        ids, lengths = caption_ids(scene)
        meta = scene.meta(self.size)
        meta.update(heldout=torch.from_numpy(self._is_novel(scene)), index=torch.from_numpy(i))
        return CaptionBatch(render(scene, self.size), torch.from_numpy(ids), torch.from_numpy(lengths), meta)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(image (3, H, W), caption ids (L,), L)``."""
        b = self.batch([item_index(i, self.length)])
        n = int(b.lengths[0])
        return b.images[0], b.captions[0, :n], n

    def texts(self, indices) -> list[str]:
        """The captions of examples ``indices`` (no drawing)."""
        return caption_texts(self.scenes(indices))

    def is_heldout(self, text: str) -> bool:
        """Does the scene this caption describes use a (shape, colour) pair withheld from training?"""
        return bool(self._is_novel(scene_from_caption(text))[0])
