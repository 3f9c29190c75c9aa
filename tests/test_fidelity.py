"""Caption fidelity: the classifiers are accurate, true pictures pass, scrambled pairs score chance.

Both classifiers are trained once for the module (about 20 s each on one thread) into a
temporary cache; the cache tests use a tiny shape classifier of their own.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from minidraw import fidelity as fid
from minidraw.data import MnistCaptions, ShapesCaptions
from minidraw.fidelity.classifiers import _accuracy

N = 1000  # captions per check


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("classifiers")


@pytest.fixture(scope="module")
def digits(pools, cache):
    return fid.digit_classifier(pools, cache_dir=cache)


@pytest.fixture(scope="module")
def shapes_clf(cache):
    return fid.shape_classifier(cache_dir=cache)


def scrambled(texts: list[str], seed: int = 0) -> list[str]:
    """Each image gets the caption of another (a derangement: nobody keeps their own)."""
    n = len(texts)
    perm = (np.arange(n) + np.random.default_rng(seed).integers(1, n, n)) % n  # never i -> i
    return [texts[j] for j in perm]


# ---- MNIST with captions ---------------------------------------------------------------------
def test_digit_classifier_accuracy(digits, pools):
    assert not digits.from_cache and digits.cache_path.is_file()
    assert digits.accuracy >= 0.98, f"digit classifier reached only {digits.accuracy:.2%}"
    x = torch.from_numpy(pools.test_images.astype(np.float32) / 255)[:, None]
    again = _accuracy(digits, x, torch.from_numpy(pools.test_labels.astype(np.int64)))
    assert again == pytest.approx(digits.accuracy, abs=1e-6)  # the recorded number is the real one
    labels = torch.from_numpy(pools.test_labels.astype(np.int64))
    blurred = _accuracy(digits, fid.blur(x, 1.2), labels)   # generated digits are soft: still read them
    assert blurred >= 0.96, f"only {blurred:.2%} of blurred test digits read right"
    assert "MNIST" in digits.source


@pytest.mark.parametrize("split", ["test", "heldout"])
def test_mnist_true_images_pass_and_scrambled_score_chance(digits, pools, split):
    data = MnistCaptions(split, pools=pools)
    batch = data.batch(np.arange(N))
    texts = batch.texts(data.vocab)
    real = fid.mnist_fidelity(batch.images, texts, digits, heldout=data)
    assert real.rate >= 95.0, real.table()
    assert set(real.by_template()) == set(fid.MNIST_TEMPLATE_NAMES)
    assert list(real.by_heldout()) == (["held-out"] if split == "heldout" else ["seen"])
    assert np.array_equal(real.heldout, batch.meta["heldout"].numpy())
    assert (real.named.sum(1) == np.where(batch.meta["digits"][:, 1].numpy() >= 0, 2, 1)).all()
    assert "all captions" in real.table() and f"{real.rate:.1f} %" in real.summary()

    wrong = scrambled(texts)
    chance = 100 * fid.mnist_oracle(texts, wrong).mean()  # the scrambled captions that still hold
    score = fid.mnist_fidelity(batch.images, wrong, digits).rate
    assert score <= 20.0 and abs(score - chance) <= 3.0, (score, chance)

    blank = fid.mnist_fidelity(torch.zeros_like(batch.images), texts, digits)
    assert blank.rate == 0.0 and (blank.details["digit"] == -1).all()


def test_mnist_digit_in_the_wrong_place_fails(digits, pools):
    """Swap left and right (top and bottom) in the caption: the digits are then in the wrong places."""
    data = MnistCaptions("test", pools=pools)
    batch = data.batch(np.arange(300))
    texts = batch.texts(data.vocab)
    swap = {"top left": "bottom right", "bottom right": "top left", "top right": "bottom left",  # corners
            "bottom left": "top right", "left of": "right of", "right of": "left of",        # first
            "at the top of": "at the bottom of", "at the bottom of": "at the top of"}
    flipped = []
    for t in texts:
        key = next(k for k in swap if k in t)
        flipped.append(t.replace(key, swap[key]))
    same_scene = fid.mnist_oracle(texts, flipped)  # "3 left of 3" flipped is still true
    result = fid.mnist_fidelity(batch.images, flipped, digits)
    assert result.correct[~same_scene].mean() <= 0.05
    assert result.correct[same_scene].mean() >= 0.9


# ---- captioned shapes ---------------------------------------------------------------------------
def test_shape_classifier_accuracy(shapes_clf):
    assert shapes_clf.accuracy >= 0.99


@pytest.mark.parametrize("split", ["test", "heldout"])
def test_shapes_true_images_pass_and_scrambled_score_chance(shapes_clf, split):
    data = ShapesCaptions(split)
    batch = data.batch(np.arange(N))
    texts = batch.texts(data.vocab)
    real = fid.shapes_fidelity(batch.images, texts, shapes_clf, heldout=batch.meta["heldout"])
    assert real.rate >= 95.0, real.table()
    assert set(real.by_template()) == set(fid.SHAPES_PLACEMENT_NAMES)
    assert np.array_equal(real.details["colour"][real.named], batch.meta["colour"].numpy()[real.named])
    assert list(real.by_heldout()) == (["held-out"] if split == "heldout" else ["seen"])

    wrong = scrambled(texts)
    chance = 100 * fid.shapes_oracle(texts, wrong).mean()
    score = fid.shapes_fidelity(batch.images, wrong, shapes_clf).rate
    assert score <= 20.0 and abs(score - chance) <= 3.0, (score, chance)
    # without the background and size the captions are easier to satisfy, but still rarely
    assert fid.shapes_fidelity(batch.images, wrong, shapes_clf, attributes=("shape", "colour")).rate <= 10.0

    for blank in (torch.zeros_like(batch.images), torch.full_like(batch.images, 0.5)):
        assert fid.shapes_fidelity(blank, texts, shapes_clf).rate == 0.0


def test_shapes_tolerates_soft_edges(shapes_clf):
    data = ShapesCaptions("test")
    batch = data.batch(np.arange(300))
    soft = fid.blur(batch.images, 0.8)
    assert fid.shapes_fidelity(soft, batch.texts(data.vocab), shapes_clf).rate >= 95.0


# ---- the cache ----------------------------------------------------------------------------------
TINY = dict(n_scenes=300, epochs=1)  # a quick shape classifier: only the cache is under test


def test_cache_round_trip(digits, pools, cache):
    path = digits.cache_path
    stamp = path.stat().st_mtime_ns
    again = fid.digit_classifier(pools, cache_dir=cache)
    assert again.from_cache and again.cache_path == path and path.stat().st_mtime_ns == stamp
    assert again.accuracy == pytest.approx(digits.accuracy)
    for a, b in zip(digits.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not [p for p in os.listdir(cache) if p.endswith(".tmp")]  # atomic writes leave nothing behind


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_is_retrained_with_a_warning(tmp_path, damage):
    first = fid.shape_classifier(cache_dir=tmp_path, **TINY)
    path = first.cache_path
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint" * 10, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    with pytest.warns(UserWarning, match="unreadable"):
        second = fid.shape_classifier(cache_dir=tmp_path, **TINY)
    assert not second.from_cache
    third = fid.shape_classifier(cache_dir=tmp_path, **TINY)  # the rewritten file loads
    assert third.from_cache and third.accuracy == pytest.approx(second.accuracy)


def test_retrain_and_settings_name_the_file(tmp_path):
    a = fid.shape_classifier(cache_dir=tmp_path, **TINY)
    b = fid.shape_classifier(cache_dir=tmp_path, retrain=True, **TINY)
    assert not b.from_cache and b.cache_path == a.cache_path
    c = fid.shape_classifier(cache_dir=tmp_path, n_scenes=301, epochs=1)
    assert c.cache_path != a.cache_path and c.cache_path.name.startswith("shapes-")


# ---- bad input and small parts ------------------------------------------------------------------
def test_bad_input_is_a_clear_value_error():
    digit, shape = fid.DigitClassifier(), fid.ShapeClassifier()  # untrained: errors come first
    caption = "the digit 3 is on the left of the digit 7 ."
    with pytest.raises(ValueError, match=r"\(M, 1, 60, 60\)"):
        fid.mnist_fidelity(torch.zeros(2, 1, 28, 28), [caption] * 2, digit)
    with pytest.raises(ValueError, match=r"\(M, 1, 60, 60\)"):
        fid.mnist_fidelity(torch.zeros(2, 60, 60), [caption] * 2, digit)
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        fid.mnist_fidelity(torch.zeros(2, 1, 60, 60), [caption], digit)
    with pytest.raises(ValueError, match="caption 1 is not"):
        fid.mnist_fidelity(torch.zeros(2, 1, 60, 60), [caption, "the digit 3 is on the left ."], digit)
    with pytest.raises(ValueError, match="caption 0 is not"):
        fid.mnist_fidelity(torch.zeros(1, 1, 60, 60), ["a red circle"], digit)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fid.mnist_fidelity(torch.full((1, 1, 60, 60), 3.0), [caption], digit)
    with pytest.raises(ValueError, match="not one string"):
        fid.mnist_fidelity(torch.zeros(1, 1, 60, 60), caption, digit)
    shapes_caption = "a large red circle is at the top left on a white background ."
    with pytest.raises(ValueError, match=r"\(M, 3, S, S\)"):
        fid.shapes_fidelity(torch.zeros(1, 1, 32, 32), [shapes_caption], shape)
    with pytest.raises(ValueError, match="caption 0 is not"):
        fid.shapes_fidelity(torch.zeros(1, 3, 32, 32), [caption], shape)
    with pytest.raises(ValueError, match="unknown attributes"):
        fid.shapes_fidelity(torch.zeros(1, 3, 32, 32), [shapes_caption], shape, attributes=("texture",))
    result = fid.mnist_fidelity(torch.zeros(1, 1, 60, 60), [caption], digit)
    with pytest.raises(ValueError, match="held-out flags"):
        result.by_heldout()
    with pytest.raises(ValueError, match="2 held-out flags for 1"):
        result.with_heldout([True, False])


def test_oracles_know_equivalent_captions():
    left = "the digit 3 is on the left of the digit 7 ."
    assert fid.mnist_oracle([left], ["the digit 7 is on the right of the digit 3 ."])[0]
    assert not fid.mnist_oracle([left], ["the digit 3 is on the right of the digit 7 ."])[0]
    assert not fid.mnist_oracle([left], ["the digit 3 is at the top left of the image ."])[0]
    two = "a small blue square is on the left of a large yellow triangle on a black background ."
    assert fid.shapes_oracle([two], ["a large yellow triangle is on the right of a small blue square "
                                     "on a black background ."])[0]
    assert not fid.shapes_oracle([two], [two.replace("black", "white")])[0]
    assert not fid.shapes_oracle([two], ["a small blue square is at the top left on a black background ."])[0]


def test_result_summaries():
    r = fid.FidelityResult("t", ["a", "b", "c", "d"], np.array([True, False, True, True]),
                           np.array([[True, True], [True, False], [True, False], [True, False]]),
                           np.array([[True, True], [True, True], [True, False], [True, False]]),
                           np.array([0, 0, 4, 5]), fid.MNIST_TEMPLATE_NAMES, np.array([False, False, True, True]))
    assert r.rate == 75.0 and len(r) == 4
    assert r.object_rate == pytest.approx(100 * 5 / 6)
    assert r.by_template() == {"left of": 50.0, "top left corner": 100.0, "top right corner": 100.0}
    assert r.by_heldout() == {"seen": 50.0, "held-out": 100.0}
    assert "held-out" in r.table() and "75.0 %" in repr(r)


def test_the_shipped_classifiers_are_found_in_their_cache_without_training(pools):
    """The book's classifiers (book/checkpoints/classifiers) are named by a hash of data and
    settings: a change to either would make CI retrain them."""
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[1] / "book" / "checkpoints" / "classifiers"
    if not shipped.is_dir():
        pytest.skip("no shipped classifiers")
    assert fid.shape_cache_file(shipped).is_file()
    if "test split only" in pools.source:                  # the offline pools the book's classifier learnt from
        assert fid.digit_cache_file(pools, shipped).is_file()
        assert fid.digit_classifier(pools, cache_dir=shipped).from_cache
    assert fid.shape_classifier(cache_dir=shipped).from_cache
