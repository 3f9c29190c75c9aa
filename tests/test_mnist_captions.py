import numpy as np
import pytest
import torch

from minidraw.data.mnist_captions import (
    CANVAS,
    DIGIT,
    PARTNER,
    SLOTS,
    TEMPLATES,
    VOCAB,
    MnistCaptions,
    caption_text,
    choose_heldout,
    choose_validation,
    parse_caption,
)
from minidraw.text import UnknownWordError


@pytest.fixture(scope="module")
def data(pools):
    return {s: MnistCaptions(s, pools=pools, seed=3) for s in ("train", "test", "heldout")}


def test_vocabulary_is_the_papers_22_tokens():
    assert len(VOCAB.content_words) == 22
    assert set(VOCAB.content_words) == set("the digit is on at left right bottom top of image .".split()) | \
        {str(d) for d in range(10)}


def test_every_caption_fits_a_template_and_matches_the_scene(data):
    b = data["train"].batch(np.arange(500))
    for text, t, (d, e) in zip(b.texts(VOCAB), b.meta["template"].tolist(), b.meta["digits"].tolist()):
        assert parse_caption(text) == (t, d, e)
        assert text == caption_text(t, d, e)
    assert set(b.meta["template"].tolist()) == set(range(len(TEMPLATES)))
    assert (b.lengths == 12).all() and b.captions.shape == (500, 12)


def test_deterministic_per_seed_and_index_whatever_the_batch(data, pools):
    ds = data["train"]
    big = ds.batch(np.arange(64))
    again = MnistCaptions("train", pools=pools, seed=3).batch(np.array([40, 7, 63]))
    assert torch.equal(again.images, big.images[[40, 7, 63]])
    assert torch.equal(again.captions, big.captions[[40, 7, 63]])
    img, cap, n = ds[7]
    assert torch.equal(img, big.images[7]) and torch.equal(cap, big.captions[7]) and n == 12
    other = MnistCaptions("train", pools=pools, seed=4).batch(np.arange(64))
    assert not torch.equal(other.images, big.images)


def test_images_are_in_range_and_digits_inside_the_canvas(data):
    b = data["test"].batch(np.arange(400))
    assert b.images.shape == (400, 1, CANVAS, CANVAS) and b.images.dtype == torch.float32
    assert b.images.min() >= 0 and b.images.max() <= 1
    corner = b.meta["corner"]  # (B, 2, 2) y, x of each digit's top-left corner
    present = b.meta["digits"] >= 0
    assert (corner[present] >= 0).all() and (corner[present] + DIGIT <= CANVAS).all()
    # the ink is where the scene says: nothing outside the digits' boxes
    mask = torch.zeros(400, CANVAS, CANVAS, dtype=torch.bool)
    for i in range(400):
        for j in range(2):
            if present[i, j]:
                y, x = corner[i, j].tolist()
                mask[i, y:y + DIGIT, x:x + DIGIT] = True
    assert (b.images[:, 0][~mask] == 0).all()


def test_layout_follows_the_words(data):
    b = data["train"].batch(np.arange(600))
    t, c = b.meta["template"], b.meta["corner"].float()
    dy, dx = c[:, 0, 0] - c[:, 1, 0], c[:, 0, 1] - c[:, 1, 1]  # first digit minus second
    assert (dx[t == 0] < -20).all() and (dx[t == 1] > 20).all()   # left of / right of
    assert (dy[t == 2] < -20).all() and (dy[t == 3] > 20).all()   # top of / bottom of
    mid = (CANVAS - DIGIT) / 2
    y, x = c[:, 0, 0], c[:, 0, 1]
    assert ((y[t == 4] < mid) & (x[t == 4] < mid)).all()          # top left
    assert ((y[t == 5] < mid) & (x[t == 5] > mid)).all()          # top right
    assert ((y[t == 6] > mid) & (x[t == 6] < mid)).all()          # bottom left
    assert ((y[t == 7] > mid) & (x[t == 7] > mid)).all()          # bottom right


def test_digits_come_from_the_right_pool_and_match_labels(data, pools):
    for split, pool in (("train", pools.train_images), ("heldout", pools.test_images)):
        b = data[split].batch(np.arange(50))
        keys = {im.tobytes() for im in pool}
        for i in range(50):
            y, x = b.meta["corner"][i, 0].tolist()
            patch = (b.images[i, 0, y:y + DIGIT, x:x + DIGIT] * 255).round().to(torch.uint8).numpy()
            if b.meta["digits"][i, 1] < 0:  # one digit: the patch is exactly a pool image
                assert patch.tobytes() in keys


def test_heldout_pairs_never_in_training_and_always_in_heldout(data):
    held = data["train"].heldout
    assert len(held) == len(SLOTS) and len({d for _, d in held}) == len(SLOTS)
    for split, want in (("train", False), ("test", False), ("heldout", True)):
        b = data[split].batch(np.arange(3000))
        slots, digits = b.meta["slots"], b.meta["digits"]
        uses = torch.tensor([any((s, d) in held for s, d in zip(ss, dd) if s >= 0)
                             for ss, dd in zip(slots.tolist(), digits.tolist())])
        assert (uses == want).all(), split
        assert (b.meta["heldout"] == want).all()
    # the reversed wording of a held-out scene is held out too
    (s, d), = [p for p in held if p[0] == 0]   # digit d may not be in the left slot
    assert data["train"].is_heldout(f"the digit 1 is on the right of the digit {d} .")
    assert PARTNER[1] == 0


def test_heldout_choice_is_seeded(data):
    assert choose_heldout(0) == choose_heldout(0) != choose_heldout(1)
    assert data["train"].heldout == choose_heldout(0)


def _uses(b, pairs) -> torch.Tensor:
    """Which scenes of batch ``b`` put a digit of ``pairs`` in its slot: ``(M,)`` bool."""
    return torch.tensor([any((s, d) in pairs for s, d in zip(ss, dd) if s >= 0)
                         for ss, dd in zip(b.meta["slots"].tolist(), b.meta["digits"].tolist())])


def test_validation_compositions_are_withheld_beside_the_reported_ones(pools):
    held, val = choose_heldout(0), choose_validation(0)
    assert len(val) == len(SLOTS) and len({d for _, d in val}) == len(SLOTS)
    assert {s for s, _ in val} == set(range(len(SLOTS))) and not held & val    # one more digit per slot
    sets = {s: MnistCaptions(s, pools=pools, seed=3, validation=True) for s in ("train", "test", "heldout-val")}
    for split in ("train", "test"):                   # training and seen scenes use neither kind of pair
        b = sets[split].batch(np.arange(3000))
        assert not _uses(b, held | val).any() and not b.meta["heldout"].any(), split
    b = sets["heldout-val"].batch(np.arange(3000))    # every validation scene has a validation pair, none held out
    assert _uses(b, val).all() and not _uses(b, held).any() and b.meta["heldout"].all()
    assert set(b.meta["template"].tolist()) == set(range(len(TEMPLATES)))     # every template is validated
    # the reported held-out split is the same images whether or not validation pairs were withheld
    plain, withheld = (MnistCaptions("heldout", pools=pools, seed=3, validation=v).batch(np.arange(200))
                       for v in (False, True))
    assert torch.equal(plain.images, withheld.images) and torch.equal(plain.captions, withheld.captions)
    # without validation nothing changes: the training stream is the one runs before it saw
    assert sets["train"].validation and not MnistCaptions("train", pools=pools).validation
    assert MnistCaptions("heldout-val", pools=pools).validation            # the split implies it
    assert sets["test"].is_heldout(sets["heldout-val"].texts([0])[0])
    assert not MnistCaptions("test", pools=pools, seed=3).is_heldout(sets["heldout-val"].texts([0])[0])


def test_bad_captions_and_arguments(pools):
    with pytest.raises(UnknownWordError, match="seven"):
        parse_caption("the digit seven is on the left of the digit 1 .")
    with pytest.raises(ValueError, match="templates"):
        parse_caption("the digit 3 is the digit 4 .")
    with pytest.raises(ValueError, match="split"):
        MnistCaptions("validation", pools=pools)


def test_indexing_rules(pools):
    ds = MnistCaptions("test", pools=pools, length=5)
    assert len(ds) == 5 and torch.equal(ds[-1][0], ds[4][0])
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(IndexError):
        ds.batch([-1])
    assert ds.batch([5, 10**9]).images.shape == (2, 1, CANVAS, CANVAS)  # the stream is infinite
