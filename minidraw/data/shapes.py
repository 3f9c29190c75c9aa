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

**Geometry.** Coordinates are fractions of the canvas side, so a :class:`Scene`
draws at any resolution. Every object fits a square box of half-side ``r``
(:data:`RADIUS`, per size); boxes keep :data:`MARGIN` from the border and
:data:`GAP` from each other, with up to :data:`JITTER` of random shift. Shapes are
signed-distance functions in pixels (negative inside); a pixel's coverage is
``clip(0.5 - sdf, 0, 1)``, about one pixel of anti-aliasing. Objects are
composited over the background in caption order.

**Held-out compositions.** ``holdout_seed`` picks one colour per shape (three
different colours): those (shape, colour) pairs never appear on *any* object of
a ``train`` (or ``test``) image. ``heldout`` images have at least one. Object
attributes are drawn from tables of the allowed pairs, so no sampling is ever
rejected and retried.

**Determinism.** Example ``i`` is a pure function of (seed, split, i): every random
choice comes from :func:`minidraw.data.common.uniform`, so the same index gives
the same image and caption in whatever batch it is asked for. Sampling, layout,
rendering and caption assembly are vectorised over the batch (loops run over the
two object slots and three shapes only).

Shape comments use the book's symbols: ``M`` scenes (``m`` in a subset), images
``B × A`` pixels (height × width; here ``A = B = size``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import Dataset

from ..text import Vocabulary, tokenize
from .common import CaptionBatch, as_indices, item_index, randint, uniform

# ---- the world --------------------------------------------------------------
SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
SIZES = ("small", "large")
BACKGROUNDS = ("black", "gray", "white")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "middle")  # one object
RELATIONS = ("on the left of", "on the right of", "above", "below")           # two objects
SPLITS = ("train", "test", "heldout")

COLOUR_RGB = np.array([[0.90, 0.10, 0.10],   # red
                       [0.10, 0.75, 0.15],   # green
                       [0.15, 0.30, 0.95],   # blue
                       [0.95, 0.85, 0.10],   # yellow
                       [0.85, 0.15, 0.85],   # magenta
                       [0.10, 0.80, 0.85]],  # cyan
                      dtype=np.float32)      # (6, 3): every pair, and each vs. a background, >= 0.5 apart
BACKGROUND_RGB = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]], dtype=np.float32)  # (3, 3)

RADIUS = np.array([0.12, 0.20])  # half-side of an object's box per size, fraction of the canvas
MARGIN = 0.05                    # box to canvas border
GAP = 0.04                       # box to box, two-object scenes
JITTER = 0.10                    # largest random shift of a centre
SQUARE = 0.85                    # a square's half-side relative to r (a full box looks too big)
# Two large objects side by side need 2*MARGIN + GAP + 4*0.20 = 0.94 <= 1 of the canvas.

# x and y "side" of each position: -1 low (left/top), +1 high (right/bottom), 0 middle.
_POSITION_SIDE = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1], [0, 0]])  # (5, 2) x, y
_POSITION_PHRASE = ("at the top left", "at the top right", "at the bottom left", "at the bottom right",
                    "in the middle")

# ---- the language -----------------------------------------------------------
WORDS = ("a", "is", "on", "at", "in", "the", "of", "top", "bottom", "left", "right", "middle",
         "above", "below", *SIZES, *COLOURS, *SHAPES, *BACKGROUNDS, "background", ".")
VOCAB = Vocabulary.closed(WORDS)
EXAMPLES = ("a large red circle is at the top left on a white background .",
            "a small blue square is on the left of a large yellow triangle on a black background .")


def _ids(words) -> np.ndarray:
    return np.array(VOCAB.encode(list(words)), dtype=np.int64)


_SIZE_ID, _COLOUR_ID, _SHAPE_ID, _BACKGROUND_ID = map(_ids, (SIZES, COLOURS, SHAPES, BACKGROUNDS))
_PLACEMENTS = _POSITION_PHRASE + RELATIONS  # placement p < 5: a position; p >= 5: relation p - 5
_PHRASE_LEN = max(len(tokenize(p)) for p in _PLACEMENTS)
_PHRASE_ID = np.zeros((len(_PLACEMENTS), _PHRASE_LEN), dtype=np.int64)  # (9, 4) padded with 0
for _p, _phrase in enumerate(_PLACEMENTS):
    _PHRASE_ID[_p, : len(tokenize(_phrase))] = _ids(tokenize(_phrase))
_A, _IS, _ON, _BACKGROUND, _STOP = _ids(("a", "is", "on", "background", "."))
MAX_LEN = 5 + _PHRASE_LEN + 4 + 5  # "a S C SH is" + placement + "a S C SH" + "on a BG background ." = 18


# ---- scenes -----------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """Explicit descriptions of ``M`` scenes, as attribute arrays (numpy).

    Attributes are indices into :data:`SHAPES`, :data:`COLOURS`, ... ; slot 0 is the
    object the caption names first. A missing second object (one-object scenes)
    holds -1 in every slot-1 field. ``x``, ``y`` are box centres as fractions of the
    canvas side (``y`` down), so one scene renders at any size.
    """

    shape: np.ndarray       # (M, 2) int64
    colour: np.ndarray      # (M, 2) int64
    size: np.ndarray        # (M, 2) int64, index into SIZES (not the canvas size)
    x: np.ndarray           # (M, 2) float64 in (0, 1)
    y: np.ndarray           # (M, 2) float64 in (0, 1)
    background: np.ndarray  # (M,) int64
    n_objects: np.ndarray   # (M,) int64, 1 or 2
    relation: np.ndarray    # (M,) int64 index into RELATIONS, -1 for one object
    position: np.ndarray    # (M,) int64 index into POSITIONS, -1 for two objects

    def __len__(self) -> int:
        return len(self.background)

    def __getitem__(self, rows) -> "Scene":
        """The scenes ``rows`` (an index, slice or array) as a smaller :class:`Scene`."""
        rows = np.array([rows]) if isinstance(rows, (int, np.integer)) else rows
        return Scene(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def meta(self, size: int = 32) -> dict[str, torch.Tensor]:
        """The scene as ``CaptionBatch.meta``: centres ``x``, ``y`` and half-sides ``radius``
        in pixels of a ``size``-pixel canvas (pixel ``j`` spans ``[j, j + 1)``), -1 where absent."""
        present = self.shape >= 0
        px = lambda v: torch.from_numpy(np.where(present, v * size, -1.0).astype(np.float32))  # noqa: E731
        radius = RADIUS[np.maximum(self.size, 0)]
        meta = {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k), dtype=np.int64))
                for k in ("shape", "colour", "size", "background", "n_objects", "relation", "position")}
        meta.update(x=px(self.x), y=px(self.y), radius=px(radius))
        return meta


def layout(size: np.ndarray, n_objects: np.ndarray, relation: np.ndarray, position: np.ndarray,
           jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box centres ``x, y (M, 2)`` (fractions) from sizes, placement and ``jitter (M, 2, 2)`` in [0, 1].

    ``jitter[b, k]`` shifts object ``k`` along the (relation's, other) axis, or
    along (x, y) for a lone object; 0.5 everywhere is the canonical layout. One
    object: each axis is pushed to its side
    (``MARGIN + r`` from the border, moved inwards by up to ``JITTER``) or centred.
    Two objects: along the relation's axis the first-named object is on the low
    side (left of / above) or the high side; the jitter there shrinks as the boxes
    grow so that they always keep ``GAP`` apart. Across, both are centred.
    """
    r = RADIUS[np.maximum(size, 0)]                                   # (M, 2)
    u = jitter                                                        # (M, 2, 2)
    # one object at a position
    side = _POSITION_SIDE[np.maximum(position, 0)]                    # (M, 2) x, y
    near = MARGIN + r[:, :1] + u[:, 0] * JITTER                       # (M, 2) distance from the border
    one = np.where(side < 0, near, np.where(side > 0, 1 - near, 0.5 + (u[:, 0] - 0.5) * JITTER))
    # two objects in a relation
    slack = 1 - 2 * MARGIN - GAP - 2 * r.sum(1, keepdims=True)        # (M, 1) room left for jitter
    shift = u[..., 0] * np.minimum(JITTER, slack / 2)                 # (M, 2)
    low, high = MARGIN + r + shift, 1 - MARGIN - r - shift            # (M, 2) each object on either side
    first_low = np.isin(relation, (0, 2))[:, None]                    # left of / above
    main = np.where(first_low, np.stack([low[:, 0], high[:, 1]], 1), np.stack([high[:, 0], low[:, 1]], 1))
    cross = 0.5 + (u[..., 1] - 0.5) * JITTER                          # (M, 2)
    vertical = (relation >= 2)[:, None]                               # above / below
    two_x, two_y = np.where(vertical, cross, main), np.where(vertical, main, cross)
    single = (n_objects == 1)[:, None]
    x = np.where(single, np.stack([one[:, 0], np.full(len(r), -1.0)], 1), two_x)
    y = np.where(single, np.stack([one[:, 1], np.full(len(r), -1.0)], 1), two_y)
    return x, y


# ---- drawing ----------------------------------------------------------------
# Each shape's coverage clip(0.5 - sdf, 0, 1) of the pixels at offsets dx (m, 1, A)
# and dy (m, B, 1) from its centre, for box half-sides r (m, 1, 1), all in pixels.
# The signed distances are built from per-row and per-column pieces, so each costs
# only a few passes over the (m, B, A) pixels.
def _clip(d: np.ndarray) -> np.ndarray:
    return np.clip(d, 0.0, 1.0, out=d)


def _circle(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    d = np.sqrt(dx * dx + dy * dy)                                    # (m, B, A) distance to the centre
    return _clip(np.subtract(0.5 + r, d, out=d))


def _square(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Half-side ``SQUARE * r``; sdf = max(|dx|, |dy|) - h, so coverage is the smaller of
    a column profile and a row profile."""
    h = 0.5 + SQUARE * r
    return np.minimum(np.clip(h - np.abs(dx), 0.0, 1.0), np.clip(h - np.abs(dy), 0.0, 1.0))


def _triangle(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Apex at the box's top centre, base along its bottom. sdf = the largest of the
    three edges' signed distances, max(dy - r, (2|dx| - dy - r) / sqrt 5): exact near the
    edges, which is where coverage is decided."""
    k = np.float32(1 / np.sqrt(5))
    d = (0.5 + (r - 2 * np.abs(dx)) * k) + dy * k                     # (m, B, A) slanted edges
    return np.minimum(_clip(d), np.clip(0.5 + r - dy, 0.0, 1.0), out=d)


_COVERAGE = (_circle, _square, _triangle)  # in SHAPES order


_BLOCK_PIXELS = 1 << 16  # scenes are drawn in blocks of this many pixels (64 at 32×32)


def render(scene: Scene, size: int = 32) -> torch.Tensor:
    """Draw ``scene`` on a ``size`` × ``size`` canvas: images ``(M, 3, B, A)`` float32 in [0, 1],
    ``A = B = size`` (the paper's width and height).

    Vectorised over blocks of scenes; blocks keep the temporaries small enough to
    stay in cache and be reused by the allocator (whole-batch temporaries cost more
    in page faults than in arithmetic).
    """
    n, pixels = len(scene), size * size
    image = np.empty((n, 3, pixels), dtype=np.float32)                # (M, 3, B*A)
    block = max(1, _BLOCK_PIXELS // pixels)
    for start in range(0, n, block):
        _draw(scene[start: start + block], size, image[start: start + block])
    return torch.from_numpy(image.reshape(n, 3, size, size))


def _draw(scene: Scene, size: int, out: np.ndarray) -> None:
    """Draw scenes into ``out (m, 3, B*A)``.

    Each slot's coverage ``a_k (m, B, A)`` is computed only for the scenes whose
    slot holds that shape. Compositing object 1 over object 0 over the background
    is linear in the three colours: ``image = bg (1-a0)(1-a1) + c0 a0 (1-a1) + c1 a1``,
    one small matrix product per scene.
    """
    n, pixels = len(scene), size * size
    grid = np.arange(size, dtype=np.float32) + 0.5                    # pixel centres, (A,) = (B,)
    cover = np.zeros((2, n, size, size), dtype=np.float32)            # (2, m, B, A) coverage per slot
    for k in range(2):
        for s, coverage in enumerate(_COVERAGE):
            rows = np.flatnonzero(scene.shape[:, k] == s)             # scenes with shape s in slot k
            if rows.size == 0:
                continue
            cx = (scene.x[rows, k] * size).astype(np.float32)[:, None, None]  # (m, 1, 1)
            cy = (scene.y[rows, k] * size).astype(np.float32)[:, None, None]
            r = (RADIUS[scene.size[rows, k]] * size).astype(np.float32)[:, None, None]
            cover[k, rows] = coverage(grid[None, None, :] - cx, grid[None, :, None] - cy, r)  # (m, B, A)
    a0, a1 = cover.reshape(2, n, pixels)                              # (m, B*A) each
    weight = np.empty((n, 3, pixels), dtype=np.float32)               # (m, 3 sources, B*A)
    np.subtract(1.0, a1, out=weight[:, 1])                            # 1 - a1
    np.multiply(weight[:, 1], 1.0 - a0, out=weight[:, 0])             # background
    weight[:, 1] *= a0                                                # object 0
    weight[:, 2] = a1                                                 # object 1
    colours = np.stack([BACKGROUND_RGB[scene.background],             # (m, 3 channels, 3 sources),
                        COLOUR_RGB[np.maximum(scene.colour[:, 0], 0)],  # contiguous: matmul uses BLAS
                        COLOUR_RGB[np.maximum(scene.colour[:, 1], 0)]], 2)
    np.matmul(colours, weight, out=out)                               # (m, 3 channels, B*A)


def caption_ids(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Word ids of every scene's caption, ``(M, MAX_LEN)`` padded with 0, and lengths ``(M,)``.

    Vectorised: the caption's segments are laid side by side in fixed-width
    columns (empty parts hold 0), then a stable sort per row moves the zeros to the end.
    """
    n = len(scene)
    two = scene.n_objects == 2                                        # (M,)
    s, c, z = (np.maximum(a, 0) for a in (scene.shape, scene.colour, scene.size))  # (M, 2)
    placement = np.where(two, len(POSITIONS) + scene.relation, scene.position)    # (M,)
    const = lambda v: np.full((n, 1), v, dtype=np.int64)  # noqa: E731
    second = np.stack([np.full(n, _A), _SIZE_ID[z[:, 1]], _COLOUR_ID[c[:, 1]], _SHAPE_ID[s[:, 1]]], 1)
    words = np.concatenate([
        const(_A), _SIZE_ID[z[:, :1]], _COLOUR_ID[c[:, :1]], _SHAPE_ID[s[:, :1]], const(_IS),  # (M, 5)
        _PHRASE_ID[placement],                                                              # (M, 4)
        np.where(two[:, None], second, 0),                                                  # (M, 4)
        const(_ON), const(_A), _BACKGROUND_ID[scene.background][:, None], const(_BACKGROUND), const(_STOP),
    ], axis=1)                                                                              # (M, 18)
    order = np.argsort(words == 0, axis=1, kind="stable")
    return np.take_along_axis(words, order, 1), (words != 0).sum(1)


def caption_texts(scene: Scene) -> list[str]:
    """The captions of ``scene`` as strings, words separated by single spaces."""
    ids, lengths = caption_ids(scene)
    return [VOCAB.decode(row, int(n)) for row, n in zip(ids, lengths)]


# ---- reading captions ---------------------------------------------------------
def parse_caption(text: str) -> dict:
    """Read a caption of the grammar into attribute names.

    Returns ``{"objects": [(size, colour, shape), ...], "position": str | None,
    "relation": str | None, "background": str}``. Unknown words raise
    :class:`~minidraw.text.UnknownWordError` (from the closed vocabulary); known
    words in the wrong place raise ``ValueError`` saying which word and what the
    grammar expected there.
    """
    VOCAB.encode(text)  # unknown or no words: the vocabulary's own error
    words = tokenize(text)
    at = 0

    def fail(expected: str):
        got = f"word {at + 1} is {words[at]!r}" if at < len(words) else "it ends"
        raise ValueError(f"caption {text!r} is outside the shapes grammar: {got}, expected {expected}. "
                         f"Captions look like {EXAMPLES[0]!r} or {EXAMPLES[1]!r}")

    def take(options, what: str) -> int:
        nonlocal at
        for i, option in enumerate(options):
            o = tokenize(option)
            if words[at: at + len(o)] == o:
                at += len(o)
                return i
        fail(what if len(options) == 1 else f"{what} ({' | '.join(options)})")

    def thing() -> tuple[str, str, str]:
        take(("a",), "'a'")
        return SIZES[take(SIZES, "a size")], COLOURS[take(COLOURS, "a colour")], SHAPES[take(SHAPES, "a shape")]

    objects = [thing()]
    take(("is",), "'is'")
    p = take(_PLACEMENTS, "a position or a relation")
    if p >= len(POSITIONS):
        objects.append(thing())
    take(("on",), "'on'")
    take(("a",), "'a'")
    background = BACKGROUNDS[take(BACKGROUNDS, "a background colour")]
    take(("background",), "'background'")
    take((".",), "'.'")
    if at < len(words):
        fail("the end of the caption")
    return {"objects": objects, "background": background,
            "position": POSITIONS[p] if p < len(POSITIONS) else None,
            "relation": RELATIONS[p - len(POSITIONS)] if p >= len(POSITIONS) else None}


_ROLES = {"on the left of": ("left", "right"), "on the right of": ("right", "left"),
          "above": ("top", "bottom"), "below": ("bottom", "top")}


def scene_facts(text: str) -> frozenset[tuple[str, object]]:
    """What a caption says is in the picture: ``{(place, (size, colour, shape))}`` and
    ``("background", colour)``. Wording aside, "A is on the left of B" and "B is on the right of A"
    are the same scene, so they give the same facts. Captions outside the grammar raise like
    :func:`parse_caption`."""
    p = parse_caption(text)
    if p["position"] is not None:
        places = [p["position"]]
    else:
        places = list(_ROLES[p["relation"]])
    return frozenset(list(zip(places, p["objects"])) + [("background", p["background"])])


def scenes_from_captions(texts: list[str], jitter: np.ndarray | None = None) -> Scene:
    """The scenes ``texts`` describe; ``jitter (M, 2, 2)`` in [0, 1] (default 0.5: canonical layout)."""
    parsed = [parse_caption(t) for t in texts]
    n = len(parsed)
    attr = np.full((3, n, 2), -1, dtype=np.int64)                     # size, colour, shape
    for b, p in enumerate(parsed):
        for k, (z, c, s) in enumerate(p["objects"]):
            attr[:, b, k] = SIZES.index(z), COLOURS.index(c), SHAPES.index(s)
    n_objects = np.array([len(p["objects"]) for p in parsed], dtype=np.int64)
    relation = np.array([RELATIONS.index(p["relation"]) if p["relation"] else -1 for p in parsed], dtype=np.int64)
    position = np.array([POSITIONS.index(p["position"]) if p["position"] else -1 for p in parsed], dtype=np.int64)
    background = np.array([BACKGROUNDS.index(p["background"]) for p in parsed], dtype=np.int64)
    jitter = np.full((n, 2, 2), 0.5) if jitter is None else np.asarray(jitter, dtype=np.float64)
    x, y = layout(attr[0], n_objects, relation, position, jitter)
    return Scene(shape=attr[2], colour=attr[1], size=attr[0], x=x, y=y, background=background,
                 n_objects=n_objects, relation=relation, position=position)


def scene_from_caption(text: str) -> Scene:
    """The one scene (``M = 1``) ``text`` describes, in the canonical layout."""
    return scenes_from_captions([text])


def render_caption(text: str, size: int = 32) -> torch.Tensor:
    """Ground truth for any caption of the grammar: ``(3, size, size)``. For the flipping
    experiments: change a colour, background or shape word and draw what it now says."""
    return render(scene_from_caption(text), size)[0]


# ---- held-out pairs and the data set -----------------------------------------------
def heldout_pairs(holdout_seed: int = 0) -> tuple[tuple[str, str], ...]:
    """One (shape, colour) pair per shape, three different colours, drawn from ``holdout_seed``."""
    perm = np.argsort(uniform(holdout_seed, np.arange(len(COLOURS)), 0xC0105), kind="stable")
    return tuple((shape, COLOURS[perm[s]]) for s, shape in enumerate(SHAPES))


class ShapesCaptions(Dataset):
    """Captioned shape scenes, example ``i`` generated from (seed, split, i).

    ``split``: ``train`` and ``test`` (different random streams, so different
    images) use only (shape, colour) pairs outside :attr:`heldout`; ``heldout``
    puts a held-out pair on at least one object. ``length`` is one epoch (default
    50,000 train, 10,000 test/heldout); ``size`` the canvas side in pixels.
    For training call :meth:`batch` with a batch of indices: it is vectorised.
    """

    endless = True  # an infinite stream: any index >= 0 is an example (the trainer relies on it)

    DEFAULT_LENGTH = {"train": 50_000, "test": 10_000, "heldout": 10_000}

    def __init__(self, split: str = "train", seed: int = 0, holdout_seed: int = 0,
                 length: int | None = None, size: int = 32) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels for the shapes to be recognisable, got {size}")
        self.split, self.seed, self.holdout_seed, self.size = split, seed, holdout_seed, size
        self.length = self.DEFAULT_LENGTH[split] if length is None else int(length)
        self.vocab, self.max_len, self.image_shape = VOCAB, MAX_LEN, (3, size, size)
        self._heldout = heldout_pairs(holdout_seed)
        self._held = np.zeros((len(SHAPES), len(COLOURS)), dtype=bool)  # (3, 6) is (shape, colour) held out?
        for s, c in self._heldout:
            self._held[SHAPES.index(s), COLOURS.index(c)] = True
        pairs = np.array([(s, c) for s in range(len(SHAPES)) for c in range(len(COLOURS))])  # (18, 2)
        is_held = self._held[pairs[:, 0], pairs[:, 1]]
        self._all, self._seen, self._novel = pairs, pairs[~is_held], pairs[is_held]        # (18|15|3, 2)
        self._key = seed * len(SPLITS) + SPLITS.index(split)  # one random stream per (seed, split)

    @property
    def heldout(self) -> tuple[tuple[str, str], ...]:
        """The held-out (shape, colour) pairs, e.g. ``(('circle', 'blue'), ...)``."""
        return self._heldout

    def __len__(self) -> int:
        return self.length

    def scenes(self, indices) -> Scene:
        """The random scenes behind examples ``indices`` (no drawing: cheap)."""
        i, k = as_indices(indices), self._key
        n_objects = 1 + (uniform(k, i, 0) >= 0.5)                    # (M,) 1 or 2, evenly
        if self.split == "heldout":                                   # slot h gets a held-out pair,
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
        """Which scenes ``(M,)`` have an object with a held-out (shape, colour) pair."""
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
        """Does the scene this caption describes use a held-out (shape, colour) pair?"""
        return bool(self._is_novel(scene_from_caption(text))[0])
