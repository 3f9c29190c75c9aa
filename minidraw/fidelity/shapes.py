"""Caption fidelity on captioned shapes: at each named place, is the named object there, with
its shape, size and colour, on the named background? (The method: :mod:`minidraw.fidelity`.)"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.shapes import ShapesCaptions
from ..data.shapes_grammar import parse_caption, scenes_from_captions
from ..data.shapes_render import BACKGROUND_RGB, COLOUR_RGB
from ..data.shapes_scene import POSITIONS, RADIUS, RELATIONS, SIZES
from ..runtime import seeded
from .classifiers import (CACHE_VERSION, NONE, ShapeClassifier, _accuracy, _cached, _classifier_dir, _digest,
                          _fit, _predict, blur)
from .result import FidelityResult, _check_images, _crops, _heldout_flags, _parse_all

SHAPES_PLACEMENT_NAMES = tuple(POSITIONS) + tuple(RELATIONS)  # one object: 5 positions; two: 4 relations
SHAPE_ATTRIBUTES = ("shape", "colour", "size", "background")
SHAPE_CROP = 20    # side of the ink crop the shape classifier reads, pixels of a 32×32 image
SHAPE_CANVAS = 32
RELATIONS_H = ("on the left of", "on the right of")
BLUR_SIGMAS = (0.0, 0.0, 0.6, 1.0)  # training scenes are blurred by these in turn


# ---- captioned shapes -----------------------------------------------------------------------------
def background_of(images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Median colour of each image's outer ring ``(M, 3)`` and the nearest background ``(M,)``."""
    ring = torch.cat([images[..., 0, :], images[..., -1, :], images[..., 1:-1, 0], images[..., 1:-1, -1]], -1)
    colour = ring.median(-1).values                                            # (M, 3)
    palette = torch.from_numpy(BACKGROUND_RGB)                                 # (3, 3)
    return colour, torch.cdist(colour, palette).argmin(1).numpy()


def ink_map(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """How far each pixel is from the background colour, ``(M, 1, B, A)`` in [0, 1]
    (1 = a palette colour at full coverage, which is >= 0.5 from every background)."""
    d2 = ((images - background[:, :, None, None]) ** 2).sum(1, keepdim=True)   # (M, 1, B, A)
    return (d2.sqrt() / 0.5).clamp(0, 1)


def _shape_crops(ink: torch.Tensor, rows: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> torch.Tensor:
    """20×20 ink crops ``(N, 1, 20, 20)`` around centres ``(cx, cy)`` in pixels (zeros outside)."""
    h = SHAPE_CROP // 2
    padded = F.pad(ink, (h, h, h, h))
    corner = np.stack([np.round(cy).astype(np.int64), np.round(cx).astype(np.int64)], 1)  # top-left in padded
    return _crops(padded, rows, corner, SHAPE_CROP)


def _to_canvas(images: torch.Tensor) -> torch.Tensor:
    if images.shape[-1] == SHAPE_CANVAS:
        return images
    return F.interpolate(images, size=(SHAPE_CANVAS, SHAPE_CANVAS), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


def _shape_training_data(split: str, n_scenes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ink crops ``(N, 1, 20, 20)`` and labels ``(N,)`` from ``n_scenes`` scenes of ``split``.

    Crops are centred where captions put objects: each scene's own canonical centres,
    the same moved by up to ±6 pixels, and the canonical centres of another scene's
    caption. A crop whose centre is within 2.5 px of a true object's centre is labelled
    with that object's shape and size, one 4 px or more from every object ``NONE``;
    those in between are ambiguous and left out.
    """
    data = ShapesCaptions(split, seed=seed, length=n_scenes, size=SHAPE_CANVAS)
    batch = data.batch(np.arange(n_scenes))
    canon = scenes_from_captions(batch.texts(data.vocab))                      # canonical layout
    rng = np.random.default_rng(seed)
    rows, k = np.nonzero(canon.shape >= 0)
    other = rng.permutation(n_scenes)
    o_rows, o_k = np.nonzero(canon.shape[other] >= 0)
    q_rows = np.concatenate([rows, rows, o_rows])                             # (N,) which image
    q_x = np.concatenate([canon.x[rows, k], canon.x[rows, k], canon.x[other[o_rows], o_k]]) * SHAPE_CANVAS
    q_y = np.concatenate([canon.y[rows, k], canon.y[rows, k], canon.y[other[o_rows], o_k]]) * SHAPE_CANVAS
    moved = slice(len(rows), 2 * len(rows))
    q_x[moved] += rng.uniform(-6, 6, len(rows))
    q_y[moved] += rng.uniform(-6, 6, len(rows))
    tx, ty = batch.meta["x"].numpy()[q_rows], batch.meta["y"].numpy()[q_rows]  # (N, 2) true centres, -1: none
    dist = np.where(tx >= 0, np.hypot(tx - q_x[:, None], ty - q_y[:, None]), np.inf)  # (N, 2)
    near = dist.argmin(1)
    cls = (batch.meta["shape"].numpy() * len(SIZES) + batch.meta["size"].numpy())[q_rows, near]
    d = dist.min(1)
    label = np.where(d <= 2.5, cls, NONE)
    keep = (d <= 2.5) | (d >= 4.0)
    images = batch.images.clone()                                              # (n, 3, B, A)
    for level, sigma in enumerate(BLUR_SIGMAS):                                 # a generator's soft edges
        images[level::len(BLUR_SIGMAS)] = blur(images[level::len(BLUR_SIGMAS)], sigma)
    colour, _ = background_of(images)
    ink = ink_map(images, colour)
    x = _shape_crops(ink, q_rows[keep], q_x[keep], q_y[keep])
    return x, torch.from_numpy(label[keep].astype(np.int64))


def train_shape_classifier(n_scenes: int = 4000, epochs: int = 3, seed: int = 0,
                           progress: bool = False) -> tuple[ShapeClassifier, float]:
    """Train :class:`ShapeClassifier` on crops of ``n_scenes`` ``train`` scenes (see
    :func:`_shape_training_data`): ``(model, accuracy)``, the accuracy on such crops of 2000
    ``test`` scenes, objects and empty places alike. About 15 s on one CPU thread."""
    x, y = _shape_training_data("train", n_scenes, seed)
    with seeded(seed):
        model = _fit(ShapeClassifier(), x, y, epochs, seed, shift=1, progress=progress)
    return model, _accuracy(model, *_shape_training_data("test", 2000, seed))


def _shape_settings(n_scenes: int, epochs: int, seed: int) -> dict:
    return {"kind": "shapes", "version": CACHE_VERSION, "n_scenes": n_scenes, "epochs": epochs, "seed": seed,
            "blur": BLUR_SIGMAS}


def shape_cache_file(cache_dir: str | os.PathLike | None = None, n_scenes: int = 4000, epochs: int = 3,
                     seed: int = 0) -> Path:
    """Where :func:`shape_classifier` keeps its classifier: ``shapes-<hash>.pt``, the hash of the
    settings (:data:`CACHE_VERSION` included) and a probe rendering of a few scenes."""
    probe = ShapesCaptions("train", seed=seed, size=SHAPE_CANVAS).batch(np.arange(8))
    key = _digest(_shape_settings(n_scenes, epochs, seed), probe.images.numpy(), probe.captions.numpy())
    return _classifier_dir(cache_dir) / f"shapes-{key}.pt"


def shape_classifier(cache_dir: str | os.PathLike | None = None, retrain: bool = False, n_scenes: int = 4000,
                     epochs: int = 3, seed: int = 0, progress: bool = False) -> ShapeClassifier:
    """The :class:`ShapeClassifier`, from the cache (``<cache_dir>/shapes-<hash>.pt``) or trained.

    The hash covers the settings and a probe rendering of a few scenes, so a change to the
    data set's geometry or drawing retrains it.
    """
    settings = _shape_settings(n_scenes, epochs, seed)
    source = f"ShapeClassifier trained on the objects of {n_scenes} captioned-shapes train scenes (seed {seed})"
    return _cached(shape_cache_file(cache_dir, n_scenes, epochs, seed), ShapeClassifier,
                   lambda: train_shape_classifier(n_scenes, epochs, seed, progress),
                   {"source": source, "settings": settings}, retrain)


def shapes_fidelity(images, texts: Sequence[str], classifier: nn.Module, heldout=None,
                    attributes: Sequence[str] = SHAPE_ATTRIBUTES, min_cover: float = 0.25) -> FidelityResult:
    """Check generated captioned-shapes images ``(M, 3, S, S)`` in [0, 1] against ``texts``.

    ``classifier``: a :func:`shape_classifier`. ``attributes``: which of shape, colour,
    size (per object) and background (per image) a caption must get right; an object
    must always be present at its place. Images of another side than 32 are resized to 32.
    ``details``: ``shape``, ``colour``, ``size`` ``(M, 2)`` as read (-1: nothing there),
    ``background (M,)`` as read, ``cover (M, 2)``, ``present_ok (M, 2)`` and ``<attribute>_ok``
    for each checked attribute.
    """
    unknown = set(attributes) - set(SHAPE_ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; choose from {SHAPE_ATTRIBUTES}")
    images = _to_canvas(_check_images(images, texts, 3, None, "captioned-shapes"))
    try:
        scene = scenes_from_captions(list(texts))                              # canonical layout
    except ValueError:
        _parse_all(parse_caption, texts, "captioned-shapes")                   # says which caption
        raise
    named = scene.shape >= 0                                                   # (M, 2)
    cx, cy = scene.x * SHAPE_CANVAS, scene.y * SHAPE_CANVAS                    # (M, 2) pixels
    r = RADIUS[np.maximum(scene.size, 0)] * SHAPE_CANVAS                       # (M, 2) named half-side
    bg_colour, bg = background_of(images)
    ink = ink_map(images, bg_colour)                                           # (M, 1, B, A)

    # presence and colour: pixels near each named centre
    grid = torch.arange(SHAPE_CANVAS, dtype=torch.float32) + 0.5
    dx = grid[None, None, None, :] - torch.from_numpy(cx).float()[..., None, None]  # (M, 2, 1, A)
    dy = grid[None, None, :, None] - torch.from_numpy(cy).float()[..., None, None]  # (M, 2, B, 1)
    d2 = dx ** 2 + dy ** 2                                                     # (M, 2, B, A)
    rr = torch.from_numpy(r).float()[..., None, None]                          # (M, 2, 1, 1)
    fg = ink >= 0.5                                                            # (M, 1, B, A)
    cover = (fg & (d2 <= rr ** 2)).sum((2, 3)).float() / (np.pi * rr[..., 0, 0] ** 2)  # (M, 2)
    present = named & (cover.numpy() >= min_cover)
    palette = torch.from_numpy(COLOUR_RGB)                                     # (6, 3)
    pix = images.permute(0, 2, 3, 1)                                           # (M, B, A, 3)
    dist = ((pix[..., None, :] - palette) ** 2).sum(-1)                    # (M, B, A, 6) squared
    dist_bg = ((pix - bg_colour[:, None, None, :]) ** 2).sum(-1, keepdim=True)  # (M, B, A, 1)
    nearest = torch.cat([dist, dist_bg], -1).argmin(-1)                        # (M, B, A) 6 = background
    votes = F.one_hot(nearest, 7)[..., :6].float()                             # (M, B, A, 6)
    weight = torch.exp(-d2 / (2 * rr ** 2))                                    # (M, 2, B, A)
    colour_score = torch.einsum("mkba,mbac->mkc", weight, votes)              # (M, 2, 6)
    colour = np.where(present, colour_score.argmax(-1).numpy(), -1)

    # shape and size: the CNN on ink crops around each named centre
    rows, k = np.nonzero(named)
    probs = _predict(classifier, _shape_crops(ink, rows, cx[rows, k], cy[rows, k]))  # (N, 7)
    cls = np.full(named.shape, -1, dtype=np.int64)
    if len(rows):
        cls[rows, k] = probs.argmax(1).numpy()
    present &= cls != NONE
    colour = np.where(present, colour, -1)
    shape = np.where(present, cls // len(SIZES), -1)
    size = np.where(present, cls % len(SIZES), -1)

    checks = {"shape": shape == scene.shape, "colour": colour == scene.colour, "size": size == scene.size}
    per_object = present.copy()
    for a in attributes:
        if a in checks:
            per_object &= checks[a]
    correct = (per_object | ~named).all(1) & named.any(1)
    background_ok = bg == scene.background
    if "background" in attributes:
        correct &= background_ok
    placement = np.where(scene.n_objects == 2, len(POSITIONS) + scene.relation, scene.position)
    details = {"shape": shape, "colour": colour, "size": size, "background": bg,
               "cover": cover.numpy(), "present_ok": present}
    details.update({f"{a}_ok": checks[a] & present for a in attributes if a in checks})
    if "background" in attributes:
        details["background_ok"] = background_ok
    return FidelityResult("caption fidelity, captioned shapes", list(texts), correct, per_object, named,
                          placement.astype(np.int64), SHAPES_PLACEMENT_NAMES,
                          _heldout_flags(heldout, list(texts)), details)


def shapes_oracle(scene_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Would a perfect checker accept ``texts[i]`` for the scene ``scene_texts[i]`` describes? ``(M,)``.

    Each named object (at its place: a position, or the low/high side of a relation's
    axis) and the background must be in the scene. Places are compared by role, not
    by pixel: "A left of B" puts A where "A left of C" does, up to a pixel or so. Every
    attribute counts, as in :func:`shapes_fidelity`'s default.
    """
    def facts(text):
        p = parse_caption(text)
        if p["position"] is not None:
            places = [("at", p["position"])]
        else:
            axis = "h" if p["relation"] in RELATIONS_H else "v"
            first_low = p["relation"] in ("on the left of", "above")        # the first-named is left / on top
            places = [(axis, first_low), (axis, not first_low)]
        return {(place, obj) for place, obj in zip(places, p["objects"])} | {("background", p["background"])}
    return np.array([facts(c) <= facts(s) for s, c in zip(scene_texts, texts)], dtype=bool)
