"""minidraw.experiments: same noise, flipping words, novel compositions, most attended words."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from minidraw import experiments as E
from minidraw.configs import preset
from minidraw.data import shapes, shapes_grammar, shapes_render, shapes_scene
from minidraw.models import build

CAPTION = "a large red circle is at the top left on a white background ."
TINY = dict(T=3, enc_size=16, dec_size=16, z_size=4, align_size=8, lang_size=8, embed_size=8)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build(preset("aligndraw_shapes_small", **TINY)).eval()


@pytest.fixture(scope="module")
def shipped():
    from minidraw import pretrained
    return pretrained.load("aligndraw-shapes")


def test_same_noise_same_picture(tiny):
    a, alpha = E.draw_same_noise(tiny, shapes_grammar.VOCAB, [CAPTION, CAPTION], n=3, seed=5)
    b, _ = E.draw_same_noise(tiny, shapes_grammar.VOCAB, [CAPTION], n=3, seed=5)
    assert a.shape == (2, 3, 3, 32, 32) and alpha.shape[:3] == (2, 3, 3)
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], b[0])
    assert not torch.equal(a[0, 0], a[0, 1])                  # rows of one caption: different noise
    c, _ = E.draw_same_noise(tiny, shapes_grammar.VOCAB, [CAPTION], n=3, seed=6)
    assert not torch.equal(a[0], c[0])                         # another seed, other noise


def test_flip_to_itself_is_identical(tiny):
    f = E.flip(tiny, shapes_grammar.VOCAB, CAPTION, "red", ["blue", "red"], n=2, seed=1, check=False)
    g = E.flip(tiny, shapes_grammar.VOCAB, CAPTION, 3, ["circle"], n=2, seed=1, check=False)   # by position
    ref, _ = E.draw_same_noise(tiny, shapes_grammar.VOCAB, [CAPTION], n=2, seed=1)
    assert f.texts == [CAPTION.replace("red", "blue"), CAPTION]
    assert torch.equal(f.images[1], ref[0]) and torch.equal(g.images[0], ref[0])
    assert not torch.equal(f.images[0], f.images[1])


def test_flipped_captions_phrases_and_errors():
    two = "a small blue square is on the left of a large yellow triangle on a black background ."
    assert E.flipped_captions(two, "on the left of", ["above"])[0] == two.replace("on the left of", "above")
    with pytest.raises(ValueError, match="does not occur"):
        E.flipped_captions(CAPTION, "purple", ["red"])
    with pytest.raises(ValueError, match="outside"):
        E.flipped_captions(CAPTION, 40, ["red"])


def test_unknown_word_is_one_clear_error(tiny):
    with pytest.raises(ValueError) as err:
        E.flip(tiny, shapes_grammar.VOCAB, CAPTION, "red", ["blue", "purple", "teal"], check=False)
    message = str(err.value)
    assert "'purple'" in message and "'teal'" in message and "'blue'" not in message
    assert "\n" not in message and "magenta" in message          # one line, with the vocabulary


def test_most_attended_words_on_a_hand_made_alpha():
    alpha = torch.tensor([[0.7, 0.2, 0.1, 0.0],
                          [0.1, 0.1, 0.8, 0.0],
                          [0.3, 0.4, 0.2, 0.1]])                   # (T=3, L=4), last column padding
    top = E.most_attended_words(alpha, ["a", "red", "circle"], k=2)
    assert [[w for w, _ in step] for step in top] == [["a", "red"], ["circle", "a"], ["red", "a"]]
    assert top[1][0][1] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        E.most_attended_words(alpha[:, :2], ["a", "red", "circle"])


def test_attention_per_word_uniform():
    vocab = shapes_grammar.VOCAB
    ids, lengths = vocab.encode_batch(["a red circle", "a blue square ."])
    L = ids.shape[1]
    mask = (torch.arange(L)[None] < lengths[:, None]).float()
    alpha = (mask / lengths[:, None])[:, None, :].expand(-1, 5, -1)         # uniform over real words
    avg = E.attention_per_word(alpha, ids, lengths, vocab)
    assert avg["red"] == pytest.approx(1 / 3) and avg["."] == pytest.approx(1 / 4)
    assert avg["a"] == pytest.approx((1 / 3 + 1 / 4) / 2) and "<pad>" not in avg


def test_temperatures_zero_is_deterministic(tiny):
    out = E.temperatures(tiny, shapes_grammar.VOCAB, CAPTION, (0, 1), n=3, seed=0)
    assert torch.allclose(out[0.0][0], out[0.0][1]) and not torch.allclose(out[1.0][0], out[1.0][1])


def test_colour_flip_changes_the_object_region(shipped, tmp_path):
    """Shipped alignDRAW: flipping the colour word changes the object's mean colour towards the
    named colour, and changes the object region more than the background."""
    model, vocab = shipped
    f = E.flip(model, vocab, CAPTION, "red", list(shapes_scene.COLOURS), n=8, seed=0, check=False)
    scene = shapes_grammar.scene_from_caption(CAPTION)
    yy, xx = np.mgrid[:32, :32] + 0.5
    r = shapes_scene.RADIUS[scene.size[0, 0]] * 32
    inside = torch.from_numpy((xx - scene.x[0, 0] * 32) ** 2 + (yy - scene.y[0, 0] * 32) ** 2 <= (0.6 * r) ** 2)
    mean = f.images[..., inside].mean(-1).mean(1)                               # (V, 3) object colour
    nearest = ((mean[:, None, :] - torch.from_numpy(shapes_render.COLOUR_RGB)) ** 2).sum(-1).argmin(1)
    assert (nearest == torch.arange(len(shapes_scene.COLOURS))).float().mean() >= 5 / 6
    change = (f.images - f.images[:1]).abs().mean((1, 2))                      # (V, 32, 32)
    assert (change[1:, inside].mean() > 2 * change[1:, ~inside].mean())


def test_flip_and_novel_compositions_are_checked(shipped):
    classifiers = Path(__file__).resolve().parents[1] / "book" / "checkpoints" / "classifiers"
    model, vocab = shipped
    f = E.flip(model, vocab, CAPTION, "white", list(shapes_scene.BACKGROUNDS), n=4, classifiers=classifiers)
    assert f.correct.shape == (3, 4) and f.correct.dtype == bool and set(f.rates()) == set(shapes_scene.BACKGROUNDS)
    novel = E.novel_compositions(model, "shapes", n=20, classifiers=classifiers)
    assert set(novel) == {"seen", "held-out"} and len(novel["held-out"].texts) == 20
    assert all(shapes.ShapesCaptions("heldout").is_heldout(t) for t in novel["held-out"].texts)


def test_layout_probe_reads_nothing_from_a_blank_what_path_and_everything_from_one_that_holds_the_words():
    """A what LSTM with every weight zero has h^what = 0 at every step: the probe can read nothing of the layout
    beyond the words' frequencies. A what path whose state *is* the caption's words (the shipped model's, with
    h^what replaced by the words' indicators) gives the probe nearly all there is to read."""
    from types import SimpleNamespace

    from minidraw import pretrained
    from minidraw.compose import ComposeDraw
    from minidraw.data.mnist_captions import MnistCaptions
    data = MnistCaptions("train")
    model, _ = pretrained.load("aligndraw-mnist")
    blank = ComposeDraw(model.cfg)
    with torch.no_grad():
        for p in blank.draw.decoder.what.parameters():
            p.zero_()
    state = torch.get_rng_state()
    none = E.layout_probe(blank, data, n=800, steps=600)
    assert abs(none["test"]) < 0.05, none
    assert torch.equal(state, torch.get_rng_state())                              # the caller's noise is kept
    H, T = model.cfg.dec_size - model.cfg.dec_size // 2, model.cfg.T

    class Leaky(torch.nn.Module):                                                 # h^what_t = the words held
        cfg, where_size = model.cfg, model.where_size

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, ids, lengths, keep_states=False):
            words = torch.zeros(len(ids), H).scatter(1, ids, 1.0)                # h^gen_t = [0 ; the words]
            h = torch.cat([torch.zeros(len(ids), model.where_size), words], -1)
            return SimpleNamespace(states=h[:, None, :].expand(-1, T, -1))

    full = E.layout_probe(Leaky(), data, n=800, steps=600)
    assert full["all"] == pytest.approx(none["all"]) and full["test"] > 0.8 * full["all"], full
    shapes, vocab = pretrained.load("aligndraw-shapes")
    with pytest.raises(ValueError, match="what/where"):
        E.layout_probe(shapes, data)
    ids, lengths = vocab.encode_batch(["a small red square is at the top left on a black background ."])
    assert shapes.generate(ids, lengths, keep_states=True).states.shape == (1, shapes.cfg.T, shapes.cfg.dec_size)


def test_a_pair_of_temperatures_scales_z_where_and_z_what_apart():
    """(τ, τ) is the temperature τ, bit for bit; with the where LSTM deaf to z^where, τ^where changes nothing and
    τ^what does — and the other way round — so each number of the pair reaches its own half of z_t."""
    from minidraw import pretrained
    from minidraw.data.mnist_captions import MnistCaptions
    from minidraw.runtime import evaluating
    model, vocab = pretrained.load("aligndraw-mnist")
    ids, lengths = vocab.encode_batch(["the digit 2 is at the top of the digit 7 .",
                                       "the digit 4 is at the bottom left of the image ."] * 2)

    def draw(m, temperature):
        with evaluating(m, 0):
            return m.generate(ids, lengths, temperature=temperature).images

    for t in (0.0, 0.5, 1.0):
        assert torch.equal(draw(model, (t, t)), draw(model, t))
    zw = model.cfg.z_size // 2
    for half, deaf in (("where", slice(0, zw)), ("what", slice(0, model.cfg.z_size - zw))):
        m = copy.deepcopy(model)
        with torch.no_grad():
            getattr(m.draw.decoder, half).weight_ih[:, deaf].zero_()               # the LSTM no longer reads its z
        same, other = ((0.0, 1.0), (1.0, 0.0)) if half == "where" else ((1.0, 0.0), (0.0, 1.0))
        assert torch.equal(draw(m, same), draw(m, (1.0, 1.0))), half
        assert not torch.equal(draw(m, other), draw(m, (1.0, 1.0))), half
    shapes, svocab = pretrained.load("aligndraw-shapes")
    sids, slengths = svocab.encode_batch(["a small red square is at the top left on a black background ."])
    with pytest.raises(ValueError, match="one number"):
        shapes.generate(sids, slengths, temperature=(0.0, 1.0))
    with pytest.raises(ValueError, match="what/where"):
        E.noise_sources(shapes, MnistCaptions("heldout"))
    classifiers = Path(__file__).resolve().parents[1] / "book" / "checkpoints" / "classifiers"
    rates = E.noise_sources(model, MnistCaptions("heldout"), n=60, pairs=((1, 1), (0, 0)), classifiers=classifiers)
    assert set(rates) == {(1, 1), (0, 0)} and all(0 <= r <= 100 for r in rates.values())


def test_the_caption_editor_draws_outside_pyplot(monkeypatch):
    """Enter draws; the figures never enter pyplot's list (a widget callback may run on another thread)."""
    widgets = pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    from minidraw import pretrained
    from minidraw.experiments import caption_editor
    models = {"MNIST": pretrained.load("aligndraw-mnist")}
    editor = caption_editor(models, "the digit 3 is at the top left of the image .", n=4)
    box = editor.children[1].children[0]
    message, grid, steps = editor.children[2:]
    open_before = plt.get_fignums()
    box.value = "the digit 5 is on the left of the digit 2 ."                   # Enter: the value is submitted
    assert grid.value[:8] == b"\x89PNG\r\n\x1a\n" and "<img" in steps.value and message.value == ""
    assert "https://" not in steps.value                                         # the player loads nothing
    assert plt.get_fignums() == open_before                                      # no figure left to pyplot
    box.value = "the digit 5 is on the left of the digit seven ."
    assert "seven" in message.value
    assert isinstance(editor, widgets.VBox)
