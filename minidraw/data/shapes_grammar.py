"""Captioned shapes, the language: writing a :class:`~minidraw.data.shapes_scene.Scene`'s caption, and reading one.

Every caption comes from one grammar, in a closed vocabulary of 30 words
(31 ids with ``<pad>``)::

    a large red circle is at the top left on a white background .
    a small blue square is on the left of a large yellow triangle on a black background .

:func:`caption_ids` writes captions (vectorised over the batch);
:func:`parse_caption` reads one back into attribute names, :func:`scene_facts`
into what it says is in the picture, :func:`scenes_from_captions` into scenes in
the canonical layout.

Shape comments use the book's symbols: ``M`` scenes.
"""
from __future__ import annotations

import numpy as np

from ..text import Vocabulary, tokenize
from .shapes_scene import BACKGROUNDS, COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, Scene, layout

_POSITION_PHRASE = ("at the top left", "at the top right", "at the bottom left", "at the bottom right",
                    "in the middle")  # in POSITIONS order
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


# ---- writing captions ---------------------------------------------------------
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
