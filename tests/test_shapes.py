"""Captioned shapes: determinism, held-out pairs, captions vs. pictures, the grammar."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import minidraw.data
from minidraw.data.common import CaptionBatch
from minidraw.data.shapes import ShapesCaptions, heldout_pairs, render_caption, validation_pairs
from minidraw.data.shapes_grammar import (
    MAX_LEN,
    VOCAB,
    WORDS,
    caption_texts,
    parse_caption,
    scene_from_caption,
    scenes_from_captions,
)
from minidraw.data.shapes_render import BACKGROUND_RGB, COLOUR_RGB, SQUARE, render
from minidraw.data.shapes_scene import BACKGROUNDS, COLOURS, POSITIONS, RADIUS, RELATIONS, SHAPES, SIZES, Scene
from minidraw.text import UnknownWordError, tokenize

N = 2048  # examples per split in the batch-wide checks


@pytest.fixture(scope="module")
def batches() -> dict[str, CaptionBatch]:
    return {split: ShapesCaptions(split, length=N).batch(np.arange(N)) for split in ("train", "test", "heldout")}


def names(meta: dict, b: int) -> dict:
    """Example ``b`` of a batch's meta in words, in :func:`parse_caption`'s form."""
    n = int(meta["n_objects"][b])
    objects = [(SIZES[meta["size"][b, k]], COLOURS[meta["colour"][b, k]], SHAPES[meta["shape"][b, k]])
               for k in range(n)]
    return {"objects": objects, "background": BACKGROUNDS[meta["background"][b]],
            "position": POSITIONS[meta["position"][b]] if n == 1 else None,
            "relation": RELATIONS[meta["relation"][b]] if n == 2 else None}


def test_vocabulary_and_tokens():
    assert len(VOCAB) == len(WORDS) + 1 == 31
    for w in WORDS:
        assert tokenize(w) == [w]  # every word is one token of the shared tokeniser
    ds = ShapesCaptions(length=500)
    for text in ds.texts(range(500)):
        assert tokenize(text) == text.split() and len(text.split()) <= MAX_LEN


def test_shapes_dtypes_ranges(batches):
    b = batches["train"]
    assert b.images.shape == (N, 3, 32, 32) and b.images.dtype == torch.float32
    assert 0.0 <= b.images.min() and b.images.max() <= 1.0
    assert b.captions.shape == (N, MAX_LEN) and b.captions.dtype == torch.int64
    assert b.lengths.dtype == torch.int64 and set(b.lengths.tolist()) <= {13, 14, 15, 18}
    assert (b.captions[torch.arange(MAX_LEN)[None] >= b.lengths[:, None]] == 0).all()  # padding is 0
    assert (b.captions[torch.arange(MAX_LEN)[None] < b.lengths[:, None]] > 0).all()
    ds = ShapesCaptions(length=10, size=48)
    image, ids, n = ds[3]
    assert image.shape == (3, 48, 48) and ids.shape == (n,) and ids.dtype == torch.int64 and isinstance(n, int)
    assert len(ds) == 10 and ds.image_shape == (3, 48, 48) and ds.vocab is VOCAB
    assert torch.equal(ds[-1][0], ds[9][0])
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(IndexError):
        ds.batch([0, -1])
    assert ds.batch([10]).images.shape == (1, 3, 48, 48)  # the stream goes on past one epoch
    with pytest.raises(ValueError, match="split"):
        ShapesCaptions("valid")


def test_deterministic_whatever_the_batch():
    ds = ShapesCaptions(length=1000)
    a = ds.batch([7, 3, 500, 999])
    order = np.arange(0, 1000, 2)[::-1]  # holds 500 at another row, among other neighbours
    b = ds.batch(order)
    c = ShapesCaptions(length=1000).batch(range(1000))  # a fresh data set object, every index
    for row, i in enumerate([7, 3, 500, 999]):
        image, ids, n = ds[i]
        assert torch.equal(a.images[row], image) and torch.equal(a.images[row], c.images[i])
        assert torch.equal(a.captions[row, :n], ids) and torch.equal(c.captions[i, :n], ids)
        for k in a.meta:
            assert torch.equal(a.meta[k][row], c.meta[k][i])
    assert torch.equal(b.images[int(np.flatnonzero(order == 500)[0])], c.images[500])
    assert ds.texts([999, 3]) == [ds.texts([999])[0], ds.texts([3])[0]]


def test_seeds_and_splits_differ(batches):
    other = ShapesCaptions(seed=1, length=N).batch(np.arange(N))
    assert not torch.equal(other.images, batches["train"].images)
    assert not torch.equal(batches["test"].images, batches["train"].images)
    assert ShapesCaptions(holdout_seed=0).heldout == ShapesCaptions("heldout", seed=5).heldout


def test_heldout_pairs():
    pairs = heldout_pairs(0)
    assert [s for s, _ in pairs] == list(SHAPES) and len({c for _, c in pairs}) == 3
    assert all(c in COLOURS for _, c in pairs) and heldout_pairs(0) == pairs
    assert len({heldout_pairs(s) for s in range(10)}) > 1  # the seed matters
    assert ShapesCaptions(holdout_seed=3).heldout == heldout_pairs(3)


@pytest.mark.parametrize("holdout_seed", [0, 1])
def test_heldout_never_in_training(holdout_seed):
    held = set(heldout_pairs(holdout_seed))
    for split in ("train", "test"):
        sc = ShapesCaptions(split, holdout_seed=holdout_seed, length=20_000).scenes(np.arange(20_000))
        present = sc.shape >= 0
        seen = {(SHAPES[s], COLOURS[c]) for s, c in zip(sc.shape[present], sc.colour[present])}
        assert not seen & held and len(seen) == 15  # every other pair does appear
    sc = ShapesCaptions("heldout", holdout_seed=holdout_seed, length=20_000).scenes(np.arange(20_000))
    novel = np.array([[(SHAPES[s], COLOURS[c]) in held if s >= 0 else False for s, c in zip(ss, cc)]
                      for ss, cc in zip(sc.shape, sc.colour)])
    assert novel.any(1).all()
    assert novel[sc.n_objects == 2, 1].any() and not novel[sc.n_objects == 2].all(1).all()


def test_validation_pairs_are_withheld_beside_the_reported_ones():
    held, val = set(heldout_pairs(0)), set(validation_pairs(0))
    assert not held & val and sorted(s for s, _ in val) == sorted(SHAPES)
    for split in ("train", "test"):
        sc = ShapesCaptions(split, validation=True).scenes(np.arange(20_000))
        present = sc.shape >= 0
        seen = {(SHAPES[s], COLOURS[c]) for s, c in zip(sc.shape[present], sc.colour[present])}
        assert not seen & (held | val) and len(seen) == 12
    ds = ShapesCaptions("heldout-val")
    sc = ds.scenes(np.arange(20_000))
    pairs = [[(SHAPES[s], COLOURS[c]) if s >= 0 else None for s, c in zip(ss, cc)] for ss, cc in zip(sc.shape, sc.colour)]
    assert all(any(p in val for p in row) and not any(p in held for p in row) for row in pairs)
    assert ds.batch(np.arange(100)).meta["heldout"].all()
    a, b = (ShapesCaptions("heldout", validation=v).batch(np.arange(100)) for v in (False, True))
    assert torch.equal(a.images, b.images)             # the reported split does not depend on validation


def test_heldout_flag(batches):
    assert not batches["train"].meta["heldout"].any() and not batches["test"].meta["heldout"].any()
    assert batches["heldout"].meta["heldout"].all()
    ds = ShapesCaptions()
    shape, colour = ds.heldout[0]
    assert ds.is_heldout(f"a small {colour} {shape} is in the middle on a gray background .")
    text = f"a small {colour} {shape} is above a large red square on a gray background ."
    assert ds.is_heldout(text) == ((shape, colour) in ds.heldout)


def test_marginals_sensible():
    sc = ShapesCaptions(length=20_000).scenes(np.arange(20_000))
    obj = sc.shape >= 0
    for values, k in ((sc.shape[obj], 3), (sc.size[obj], 2), (sc.background, 3),
                      (sc.relation[sc.n_objects == 2], 4), (sc.position[sc.n_objects == 1], 5)):
        freq = np.bincount(values, minlength=k) / len(values)
        assert np.allclose(freq, 1 / k, atol=0.03)
    assert abs((sc.n_objects == 1).mean() - 0.5) < 0.03
    colour = np.bincount(sc.colour[obj], minlength=6) / obj.sum()
    assert colour.min() > 0.1  # held-out colours are rarer (2 shapes of 3), never missing


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_captions_match_meta(batches, split):
    b = batches[split]
    texts = b.texts(VOCAB)
    assert texts[:50] == ShapesCaptions(split, length=N).texts(range(50))
    for i, text in enumerate(texts):
        assert parse_caption(text) == names(b.meta, i), text


def test_objects_inside_canvas_and_apart(batches):
    for b in batches.values():
        m, n = b.meta, 32
        present = m["shape"] >= 0
        assert torch.equal(present[:, 1], m["n_objects"] == 2) and present[:, 0].all()
        x, y, r = m["x"][present], m["y"][present], m["radius"][present]
        assert (x - r >= 1).all() and (x + r <= n - 1).all() and (y - r >= 1).all() and (y + r <= n - 1).all()
        two = m["n_objects"] == 2
        dx = (m["x"][two, 0] - m["x"][two, 1]).abs() - m["radius"][two].sum(1)
        dy = (m["y"][two, 0] - m["y"][two, 1]).abs() - m["radius"][two].sum(1)
        assert (torch.maximum(dx, dy) >= 1.0).all()  # boxes at least a pixel apart: no overlap
        # so every border pixel is pure background
        bg = torch.from_numpy(BACKGROUND_RGB)[m["background"]][:, :, None]  # (B, 3, 1)
        border = torch.cat([b.images[:, :, 0], b.images[:, :, -1], b.images[:, :, :, 0], b.images[:, :, :, -1]], 2)
        assert torch.allclose(border, bg.expand_as(border))


def test_layout_respects_relation_and_position(batches):
    m = batches["train"].meta
    for rel, name in enumerate(RELATIONS):
        sel = m["relation"] == rel
        x0, x1, y0, y1 = m["x"][sel, 0], m["x"][sel, 1], m["y"][sel, 0], m["y"][sel, 1]
        first_before = {"on the left of": x0 < x1, "on the right of": x0 > x1,
                        "above": y0 < y1, "below": y0 > y1}[name]
        assert sel.sum() > 100 and first_before.all()
    for pos, name in enumerate(POSITIONS):
        sel = m["position"] == pos
        x, y = m["x"][sel, 0], m["y"][sel, 0]
        if name == "middle":
            assert ((x - 16).abs() <= 2).all() and ((y - 16).abs() <= 2).all()
        else:
            assert ((x < 16) if "left" in name else (x > 16)).all()
            assert ((y < 16) if "top" in name else (y > 16)).all()


def test_colours_at_centre_and_corner(batches):
    for b in batches.values():
        m = b.meta
        rows = torch.arange(len(b))
        bg = torch.from_numpy(BACKGROUND_RGB)[m["background"]]  # (B, 3)
        assert torch.allclose(b.images[:, :, 0, 0], bg) and torch.allclose(b.images[:, :, -1, -1], bg)
        for k in range(2):
            present = m["shape"][:, k] >= 0
            px, py = m["x"][present, k].long(), m["y"][present, k].long()
            centre = b.images[rows[present], :, py, px]  # (b, 3)
            assert torch.allclose(centre, torch.from_numpy(COLOUR_RGB)[m["colour"][present, k]])


def test_colours_well_separated():
    rgb = np.concatenate([COLOUR_RGB, BACKGROUND_RGB])
    d = np.linalg.norm(rgb[:, None] - rgb[None], axis=2) + np.eye(len(rgb))
    assert d.min() >= 0.5


def test_render_matches_naive_sdf():
    """The vectorised renderer against a per-pixel, per-object drawing of the same scenes."""
    sc = ShapesCaptions("heldout", length=64, size=24).scenes(np.arange(64))
    got = render(sc, 24).numpy()
    c = np.arange(24) + 0.5
    X, Y = np.meshgrid(c, c)
    for b in range(64):
        want = np.broadcast_to(BACKGROUND_RGB[sc.background[b]][:, None, None], (3, 24, 24)).astype(np.float64)
        for k in range(sc.n_objects[b]):
            dx, dy, r = X - sc.x[b, k] * 24, Y - sc.y[b, k] * 24, RADIUS[sc.size[b, k]] * 24
            sdf = {"circle": np.hypot(dx, dy) - r,
                   "square": np.maximum(abs(dx), abs(dy)) - SQUARE * r,
                   "triangle": np.maximum(dy - r, (2 * abs(dx) - dy - r) / np.sqrt(5))}[SHAPES[sc.shape[b, k]]]
            a = np.clip(0.5 - sdf, 0, 1)
            want = want * (1 - a) + COLOUR_RGB[sc.colour[b, k]][:, None, None] * a
            assert 0 < ((a > 0) & (a < 1)).sum()  # anti-aliased edge pixels exist
        np.testing.assert_allclose(got[b], want, atol=1e-5)


def test_sizes_and_shapes_differ_in_area():
    area = {}
    for size in SIZES:
        for shape in SHAPES:
            img = render_caption(f"a {size} red {shape} is in the middle on a black background .")
            area[size, shape] = float(img[0].sum())
    for shape in SHAPES:
        assert area["large", shape] > 2 * area["small", shape]
    assert len({round(v) for v in area.values()}) == 6


def test_scene_round_trip_and_slicing():
    sc = ShapesCaptions("heldout", length=300).scenes(np.arange(300))
    texts = caption_texts(sc)
    again = scenes_from_captions(texts)
    for f in ("shape", "colour", "size", "background", "n_objects", "relation", "position"):
        assert np.array_equal(getattr(again, f), getattr(sc, f))
    assert caption_texts(again) == texts
    assert caption_texts(sc[5]) == texts[5:6] and len(sc[10:20]) == 10
    assert torch.equal(render(sc[10:20]), render(sc)[10:20])


def test_flipping_words():
    """The book's flipping experiments: one changed word changes only what it names."""
    base = "a large red circle is on the left of a small blue square on a white background ."
    img = render_caption(base)
    colour = render_caption(base.replace("red", "green"))
    background = render_caption(base.replace("white", "black"))
    shape = render_caption(base.replace("square", "triangle"))
    left, right = np.s_[:, :, :16], np.s_[:, :, 16:]
    assert not torch.equal(colour[left], img[left]) and torch.equal(colour[right], img[right])
    assert not torch.equal(shape[right], img[right]) and torch.equal(shape[left], img[left])
    assert torch.equal(background[:, 0, 0], torch.zeros(3)) and torch.equal(img[:, 0, 0], torch.ones(3))
    sc = scene_from_caption(base)
    assert len(sc) == 1 and sc.relation[0] == 0 and sc.x[0, 0] < sc.x[0, 1]
    assert render_caption(base, size=64).shape == (3, 64, 64)


def test_unknown_words_rejected():
    with pytest.raises(UnknownWordError, match="purple"):
        render_caption("a large purple circle is at the top left on a white background .")
    with pytest.raises(UnknownWordError, match="hexagon"):
        parse_caption("a small red hexagon is above a large blue square on a black background .")


@pytest.mark.parametrize("text, where", [
    ("a red large circle is in the middle on a gray background .", "word 2 is 'red', expected a size"),
    ("a large red circle is on a gray background .", "word 6 is 'on', expected a position or a relation"),
    ("a large red circle is above on a gray background .", "word 7 is 'on', expected 'a'"),
    ("a large red circle is in the middle on a red background .", "word 11 is 'red', expected a background"),
    ("a large red circle is in the middle on a gray background", "it ends, expected '.'"),
    ("a large red circle is in the middle on a gray background . .", "word 14 is '.', expected the end"),
    ("large red circle is in the middle on a gray background .", "word 1 is 'large', expected 'a'"),
])
def test_parse_errors_name_the_problem(text, where):
    with pytest.raises(ValueError, match=where.replace(".", r"\.")) as e:
        parse_caption(text)
    assert not isinstance(e.value, UnknownWordError)


def test_scene_is_explicit():
    """A hand-written Scene renders: the public path for any picture, captioned or not."""
    sc = Scene(shape=np.array([[2, 0]]), colour=np.array([[3, 5]]), size=np.array([[1, 0]]),
               x=np.array([[0.3, 0.75]]), y=np.array([[0.5, 0.5]]), background=np.array([1]),
               n_objects=np.array([2]), relation=np.array([0]), position=np.array([-1]))
    img = render(sc, 40)[0]
    assert torch.allclose(img[:, 20, 12], torch.from_numpy(COLOUR_RGB[3]))  # yellow triangle at x = 0.3
    assert torch.allclose(img[:, 20, 30], torch.from_numpy(COLOUR_RGB[5]))  # cyan circle at x = 0.75
    assert caption_texts(sc) == [
        "a large yellow triangle is on the left of a small cyan circle on a gray background ."]


def test_the_modules_import_bottom_up():
    """The world, then the drawing or the language, then the data set: no module imports one above it."""
    folder = Path(minidraw.data.__file__).parent

    def siblings(name: str) -> set[str]:
        tree = ast.parse((folder / f"{name}.py").read_text())
        return {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module.startswith("shapes")}
    assert siblings("shapes_scene") == set()
    assert siblings("shapes_render") == siblings("shapes_grammar") == {"shapes_scene"}
    assert siblings("shapes") == {"shapes_scene", "shapes_render", "shapes_grammar"}
