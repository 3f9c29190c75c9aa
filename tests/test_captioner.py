"""The image-to-text captioner (minidraw.captioner, "Show, Attend and Tell" in small): the
teacher-forced loss against a derivation by hand, padding, greedy and beam decoding (an exhaustive
search on a tiny vocabulary included), overfitting a handful of captions, scene agreement (minidraw.scoring), training
through the trainer with exact resumption, and the errors bad input gets."""
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from minidraw import checkpoint, configs, rundir, train
from minidraw.captioner import Captioner, CaptionerConfig, Decoded
from minidraw.configs import preset
from minidraw.data import mnist_captions, shapes, shapes_grammar
from minidraw.models import build
from minidraw.scoring import accuracy, agreement, facts_for
from minidraw.text import Vocabulary

TINY = dict(channels=4, feature_size=8, embed_size=8, hidden_size=16, align_size=8)
TINY_SETS = [f"model.{k}={v}" for k, v in TINY.items()]
PRESETS = ("captioner_mnist_small", "captioner_shapes_small")


def tiny(name: str = "captioner_mnist_small", seed: int = 0, sharp: float = 1.0, dtype=torch.float64,
         **kw) -> Captioner:
    """A small random captioner. ``sharp`` scales every weight matrix: at the default initialisation
    every word is about equally likely, so greedy and beam search barely differ; sharper weights make
    peaked, image-dependent distributions where they do."""
    torch.manual_seed(seed)
    model = build(preset(name, **{**TINY, **kw}))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(sharp)
    return model.to(dtype).eval()


def images_for(model: Captioner, M: int, seed: int = 0) -> torch.Tensor:
    c = model.cfg
    g = torch.Generator().manual_seed(seed)
    return torch.rand(M, c.C, c.B, c.A, generator=g, dtype=next(model.parameters()).dtype)


def random_captions(lengths: list[int], V: int, N: int | None = None, seed: int = 0):
    """Word ids in 1..V-1 for the first ``lengths[i]`` positions of row i, 0 after: ``ids (M, N)``,
    ``lengths (M,)``."""
    g = torch.Generator().manual_seed(seed)
    N = N or max(lengths)
    ids = torch.randint(1, V, (len(lengths), N), generator=g)
    lengths = torch.tensor(lengths)
    ids[torch.arange(N)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


def without_greedy_fallback(model: Captioner, monkeypatch) -> None:
    """Make the greedy caption that :meth:`Captioner.beam` adds as a last candidate lose always, so
    that what comes back is the beam search's own result."""
    def hopeless(images, max_len=None):
        M, L = images.shape[0], model.cfg.grid[0] * model.cfg.grid[1]
        return Decoded([[] for _ in range(M)], images.new_full((M,), float("-inf")), images.new_zeros(M, 1, L))
    monkeypatch.setattr(model, "greedy", hopeless)


def check_alpha_rows(alpha: torch.Tensor, n_steps: list[int]) -> None:
    """Rows 0 .. n_steps[i]-1 of ``alpha[i]`` are distributions over the grid, the rest zero."""
    for row, n in zip(alpha, n_steps):
        torch.testing.assert_close(row[:n].sum(-1), torch.ones(n, dtype=row.dtype))
        assert (row[:n] >= 0).all()
        assert (row[n:] == 0).all()


# ---- 1. shapes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, grid", [("captioner_mnist_small", (7, 7)), ("captioner_shapes_small", (8, 8))])
def test_shapes_of_the_loss_the_attention_and_the_decoded_captions(name, grid):
    model = tiny(name, sharp=3.0)
    c = model.cfg
    assert c.grid == grid
    L = grid[0] * grid[1]
    M, lengths = 4, [3, 1, 5, 2]
    images = images_for(model, M)
    captions, lengths_t = random_captions(lengths, c.vocab_size, N=7)      # two columns of padding past the longest
    out = model(images, captions, lengths_t)
    assert out.loss.shape == out.correct.shape == out.count.shape == (M,)
    assert torch.isfinite(out.loss).all() and (out.loss > 0).all()
    assert out.count.tolist() == [n + 1 for n in lengths]                  # n words and the end
    assert ((out.correct >= 0) & (out.correct <= out.count)).all()
    assert out.alpha.shape == (M, max(lengths) + 1, L)
    check_alpha_rows(out.alpha, [n + 1 for n in lengths])
    assert set(out.metrics()) == {"word_acc", "nats_per_word"}
    assert out.metrics()["nats_per_word"] == pytest.approx(out.loss.sum().item() / sum(n + 1 for n in lengths))
    few_words = dict(sharp=3.0, vocab_size=6, content_first=3, content_last=5)     # the end comes sooner
    for seed, more in itertools.product(range(3), (dict(sharp=5.0), few_words)):
        model = tiny(name, seed=seed, **more)
        images = images_for(model, 6, seed)
        for decoded in (model.greedy(images, max_len=4), model.beam(images, 3, max_len=4)):
            assert len(decoded.ids) == 6 and decoded.log_prob.shape == (6,)
            assert all(len(ids) <= 4 and all(0 < w < model.cfg.vocab_size for w in ids) for ids in decoded.ids)
            assert decoded.alpha.shape[0] == 6 and decoded.alpha.shape[2] == L and decoded.alpha.shape[1] <= 5
            check_alpha_rows(decoded.alpha, [len(ids) + 1 for ids in decoded.ids])
            assert (decoded.log_prob <= 0).all()
        assert all(len(ids) <= model.cfg.max_len for ids in model.greedy(images).ids)   # default: the preset's max_len


def test_the_grid_formula_is_the_encoders_and_cells_know_where_they_are():
    for A, B, stride, pools in ((60, 60, 2, 2), (32, 32, 1, 2), (33, 17, 2, 1), (8, 9, 2, 2), (13, 8, 1, 3)):
        cfg = CaptionerConfig(A=A, B=B, C=2, vocab_size=5, channels=2, stem_stride=stride, pools=pools,
                              feature_size=3, embed_size=2, hidden_size=4, align_size=2)
        model = Captioner(cfg)
        rows, cols = cfg.grid
        a = model.encoder(torch.rand(2, 2, B, A))
        assert a.shape == (2, rows * cols, 3 + 2), (A, B, stride, pools)
        xy = a[0, :, -2:].reshape(rows, cols, 2)                       # a_i = [features ; x ; y]
        if cols > 1:
            torch.testing.assert_close(xy[:, 0, 0], torch.full((rows,), -1.0))   # left column: x = −1
            torch.testing.assert_close(xy[:, -1, 0], torch.full((rows,), 1.0))   # right column: x = +1
        if rows > 1:
            torch.testing.assert_close(xy[0, :, 1], torch.full((cols,), -1.0))   # top row: y = −1
            torch.testing.assert_close(xy[-1, :, 1], torch.full((cols,), 1.0))
        assert (xy[:, 1:, 0] > xy[:, :-1, 0]).all() and (xy[1:, :, 1] > xy[:-1, :, 1]).all()


# ---- 2. padding ---------------------------------------------------------------------------------
def _loss_and_grads(model, images, captions, lengths):
    model.zero_grad()
    out = model(images, captions, lengths)
    out.loss.sum().backward()
    return out.loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("name", PRESETS)
def test_padding_and_words_past_the_end_change_neither_the_loss_nor_its_gradients(name):
    model = tiny(name, sharp=2.0)
    lengths = [4, 2, 6, 1, 3]
    captions, lengths_t = random_captions(lengths, model.cfg.vocab_size, seed=1)
    images = images_for(model, len(lengths))
    loss, grads = _loss_and_grads(model, images, captions, lengths_t)
    padded = torch.cat([captions, torch.zeros(len(lengths), 3, dtype=torch.long)], 1)       # more 0 columns
    garbage = torch.randint(1, model.cfg.vocab_size, padded.shape, generator=torch.Generator().manual_seed(2))
    past = torch.arange(padded.shape[1])[None, :] >= lengths_t[:, None]
    noisy = torch.where(past, garbage, padded)                       # words (never 0) everywhere past each end
    assert (noisy[past] != 0).all() and torch.equal(noisy[~past], padded[~past])
    for other in (padded, noisy):
        loss2, grads2 = _loss_and_grads(model, images, other, lengths_t)
        torch.testing.assert_close(loss2, loss, rtol=1e-12, atol=1e-12)
        for k in grads:
            torch.testing.assert_close(grads2[k], grads[k], rtol=1e-10, atol=1e-12, msg=k)
    # and the words inside a caption do matter (the test above is not vacuous)
    changed = captions.clone()
    changed[0, 1] = changed[0, 1] % (model.cfg.vocab_size - 1) + 1
    assert not torch.allclose(model(images, changed, lengths_t).loss[0], loss[0])
    # each caption's loss is its own: batch neighbours of other lengths change nothing
    for i in range(len(lengths)):
        alone = model(images[i:i + 1], captions[i:i + 1, : lengths[i]], lengths_t[i:i + 1]).loss
        torch.testing.assert_close(alone, loss[i:i + 1], rtol=1e-12, atol=1e-12)


# ---- 3. the loss, derived by hand -----------------------------------------------------------------
def _step_by_hand(model: Captioner, word: int, h, c, a):
    """One step of the docstring's equations, written out with the model's own parameters for one
    image: ``a (L, D')``, ``h, c (hidden,)`` -> log p ``(V,)``, h, c, α ``(L,)``."""
    al = model.align
    e = torch.stack([al.v.weight[0] @ torch.tanh(al.U.weight @ a_i + al.W.weight @ h + al.W.bias) for a_i in a])
    alpha = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()          # softmax over the grid cells
    z = (alpha[:, None] * a).sum(0)                                         # z_t = Σ_i α_i a_i
    x = torch.cat([model.embed.weight[word], z])                            # [E y_{t−1} ; z_t]
    lstm = model.lstm
    gates = lstm.weight_ih @ x + lstm.bias_ih + lstm.weight_hh @ h + lstm.bias_hh
    i, f, g, o = gates.chunk(4)                                             # PyTorch's gate order
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    logits = model.out.weight @ torch.cat([h, z]) + model.out.bias          # W_o [h_t ; z_t] + b_o
    lo, hi = model.cfg.content_first, model.cfg.content_last
    if hi:                                                                  # content words: W_c z_t + b_c, from
        features = z[: model.cfg.feature_size]                              # the attended features alone
        logits = torch.cat([logits[:lo], model.content.weight @ features + model.content.bias, logits[hi + 1:]])
    return logits - torch.logsumexp(logits, 0), h, c, alpha


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("content", ["preset", "none"])
def test_the_teacher_forced_loss_is_minus_the_sum_of_the_step_log_probabilities(name, content):
    model = tiny(name, seed=1, sharp=2.0, **({} if content == "preset" else dict(content_first=0, content_last=0)))
    assert (model.content is None) == (content == "none")
    lengths = [5, 2, 7]
    captions, lengths_t = random_captions(lengths, model.cfg.vocab_size, seed=3)
    images = images_for(model, 3, seed=4)
    out = model(images, captions, lengths_t)
    for m, n in enumerate(lengths):
        words = captions[m, :n].tolist() + [0]                               # y_1 .. y_n, then the end (0)
        # with the model's own pieces, start and step
        a, keys, state = model.start(images[m:m + 1])
        prev, nll, alphas = 0, 0.0, []
        for target in words:
            logp, state, alpha = model.step(torch.tensor([prev]), state, a, keys)
            nll, prev = nll - logp[0, target], target
            alphas.append(alpha[0])
        torch.testing.assert_close(out.loss[m], nll, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out.alpha[m, : n + 1], torch.stack(alphas), rtol=1e-10, atol=1e-10)
        # and entirely by hand, from the equations
        a = model.encoder(images[m:m + 1])[0]                                 # (L, D')
        mean = a.mean(0)
        h = torch.tanh(model.init_h.weight @ mean + model.init_h.bias)       # h_0, c_0 = tanh(W_h ā), tanh(W_c ā)
        c = torch.tanh(model.init_c.weight @ mean + model.init_c.bias)
        prev, nll, correct = 0, 0.0, 0
        for target in words:
            logp, h, c, _ = _step_by_hand(model, prev, h, c, a)
            nll, prev = nll - logp[target], target
            correct += int(logp.argmax() == target)
        torch.testing.assert_close(out.loss[m], nll, rtol=1e-9, atol=1e-9)
        assert out.correct[m].item() == correct
    torch.testing.assert_close(model.log_prob(images, captions, lengths_t), -out.loss)


@pytest.mark.parametrize("name", PRESETS)
def test_content_words_are_scored_from_what_is_seen_not_from_the_sentence_so_far(name):
    """With content words (the presets' digits; sizes, colours, shapes, backgrounds), which content
    word comes next depends on the attended features only: fed another previous word from the same
    state (so z_t is the same, h_t is not), the content words' log-probabilities move together, by one
    constant; the other words' do not. Without content words the LSTM state ranks them too."""
    for content in ("preset", "none"):
        model = tiny(name, seed=3, sharp=2.0, **({} if content == "preset" else dict(content_first=0, content_last=0)))
        lo, hi = preset(name).content_first, preset(name).content_last + 1
        assert hi > lo > 0
        a, keys, state = model.start(images_for(model, 2, seed=1))
        _, state, _ = model.step(torch.tensor([0, 0]), state, a, keys)            # one step into a caption
        one, _, alpha1 = model.step(torch.tensor([1, 2]), state, a, keys)
        two, _, alpha2 = model.step(torch.tensor([lo, hi - 1]), state, a, keys)
        torch.testing.assert_close(alpha1, alpha2)                                # the same look: z_t is the same
        shift = two - one                                                         # (M, V)
        spread = lambda x: (x.max(-1).values - x.min(-1).values).max().item()    # noqa: E731
        rest = torch.cat([shift[:, :lo], shift[:, hi:]], -1)
        assert spread(rest) > 1e-3                                                # the previous word matters
        if content == "preset":
            assert spread(shift[:, lo:hi]) < 1e-12
        else:
            assert spread(shift[:, lo:hi]) > 1e-3


def test_what_where_is_withdrawn_and_the_shipped_files_that_stored_it_off_still_load():
    """``what_where`` (measured worse, never shipped) is gone: a configuration that stored it off loads as the
    same model — the shipped captioners do — and one that stored it on is refused by name."""
    stored = {**CaptionerConfig().to_dict(), "what_where": False}
    assert CaptionerConfig.from_dict(stored) == CaptionerConfig()
    with pytest.raises(ValueError, match=r"what_where=True, a setting that was removed"):
        CaptionerConfig.from_dict({**stored, "what_where": True})
    with pytest.raises(TypeError):
        CaptionerConfig(what_where=False)                                # no longer a setting
    shipped = sorted((Path(checkpoint.__file__).parent / "weights").glob("captioner-*.pt"))
    assert shipped
    for path in shipped:
        assert torch.load(path, map_location="cpu", weights_only=True)["config"]["what_where"] is False
        model, _ = checkpoint.load(path)
        assert isinstance(model, Captioner)


POSITIONS = {"captioner_mnist_small": ("left", "top"), "captioner_shapes_small": ("top", "below")}  # first, last


def _positions(name):
    vocab = (mnist_captions.VOCAB if "mnist" in name else shapes_grammar.VOCAB)
    first, last = (vocab.encode(w)[0] for w in POSITIONS[name])
    return dict(position_first=first, position_last=last)


@pytest.mark.parametrize("name", PRESETS)
def test_position_words_are_scored_from_where_it_looked_and_the_grammar_not_from_the_digit_named(name):
    """With position words, "left", "top", "above" ... are scored by MLP([g_t ; x_t ; y_t]): after naming one
    content word or another from the same state (the same look), their scores are the same up to the softmax's
    constant, and equal a naive recomputation; a grammar word moves them; another picture (another look) too.
    Beam search of width 1 still decodes greedily with the longer state."""
    pos = _positions(name)
    lo, hi = preset(name).content_first, preset(name).content_last
    p0, p1 = pos["position_first"], pos["position_last"] + 1
    model = tiny(name, seed=3, sharp=2.0, **pos)
    a, keys, state = model.start(images_for(model, 2, seed=1))
    assert len(state) == 4
    _, state, _ = model.step(torch.tensor([0, 0]), state, a, keys)
    one, s1, alpha = model.step(torch.tensor([lo, lo]), state, a, keys)
    two, s2, _ = model.step(torch.tensor([hi, lo + 1]), state, a, keys)
    assert torch.equal(s1[2], s2[2]) and not torch.allclose(s1[0], s2[0])      # g_t the same, h_t not
    norm = lambda x: x[:, p0:p1] - x[:, p0:p1].logsumexp(-1, keepdim=True)      # noqa: E731
    torch.testing.assert_close(norm(one), norm(two), rtol=0, atol=1e-12)
    xy = torch.einsum("ml,mlk->mk", alpha, a[..., model.cfg.feature_size:])    # where α looked
    naive = torch.log_softmax(model.position(torch.cat([s1[2], xy], -1)), -1)
    torch.testing.assert_close(norm(one), naive)
    three, _, _ = model.step(torch.tensor([1, 1]), state, a, keys)             # a grammar word
    assert (norm(three) - norm(one)).abs().max().item() > 1e-3
    F = model.cfg.feature_size                                                 # the same look (same keys), but
    other_features, other_places = a.clone(), a.clone()                        # other features or other places
    other_features[..., :F] += 1.0
    other_places[..., F:] *= -1.0
    four, _, _ = model.step(torch.tensor([lo, lo]), state, other_features, keys)
    torch.testing.assert_close(norm(four), norm(one), rtol=0, atol=1e-12)
    five, _, _ = model.step(torch.tensor([lo, lo]), state, other_places, keys)
    assert (norm(five) - norm(one)).abs().max().item() > 1e-3
    images = images_for(model, 3, seed=2)
    assert model.beam(images, width=1).ids == model.greedy(images).ids
    assert model.beam(images, width=3).log_prob.ge(model.greedy(images).log_prob - 1e-9).all()
    with pytest.raises(ValueError, match="overlap the content"):
        CaptionerConfig(content_first=13, content_last=22, position_first=6, position_last=13)
    with pytest.raises(ValueError, match="position words need content words"):
        CaptionerConfig(position_first=6, position_last=9)


# ---- 4, 5. decoding ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("seed", range(4))
def test_beam_search_of_width_one_is_greedy_decoding(name, seed, monkeypatch):
    model = tiny(name, seed=seed, sharp=4.0, dtype=torch.float32, max_len=8)
    images = images_for(model, 5, seed)
    greedy = model.greedy(images)
    without_greedy_fallback(model, monkeypatch)                        # beam's own answer, not the fallback
    beam = model.beam(images, 1)
    assert beam.ids == greedy.ids
    torch.testing.assert_close(beam.log_prob, greedy.log_prob, rtol=1e-6, atol=1e-5)
    T = max(beam.alpha.shape[1], greedy.alpha.shape[1])
    pad = lambda x: torch.nn.functional.pad(x, (0, 0, 0, T - x.shape[1]))   # noqa: E731
    torch.testing.assert_close(pad(beam.alpha), pad(greedy.alpha))


def _check_rescored(model: Captioner, images: torch.Tensor, decoded: Decoded, what: str) -> list[int]:
    """Each decoded caption's ``log_prob`` is log p(y | x) re-scored by teacher forcing — its words,
    then the end, also when max_len forced the end — and its ``alpha`` is where teacher forcing of
    that caption looks. Returns the captions' lengths."""
    for i, ids in enumerate(decoded.ids):
        if not ids:                                                    # the empty caption: log p(end) at step 0
            a, keys, state = model.start(images[i:i + 1])
            logp, _, alpha = model.step(torch.tensor([0]), state, a, keys)
            torch.testing.assert_close(decoded.log_prob[i], logp[0, 0], msg=f"{what}, image {i}")
            torch.testing.assert_close(decoded.alpha[i, 0], alpha[0], msg=f"{what}, image {i}")
            continue
        caption, n = torch.tensor([ids]), torch.tensor([len(ids)])
        rescored = model(images[i:i + 1], caption, n)
        torch.testing.assert_close(decoded.log_prob[i:i + 1], -rescored.loss, rtol=1e-10, atol=1e-10,
                                   msg=f"{what}, image {i}")
        torch.testing.assert_close(decoded.alpha[i, : len(ids) + 1], rescored.alpha[0], rtol=1e-10, atol=1e-10,
                                   msg=f"{what}, image {i}")
    return [len(ids) for ids in decoded.ids]


@pytest.mark.parametrize("name", PRESETS)
def test_beam_search_never_loses_to_greedy_and_reports_its_captions_log_probability(name):
    strictly_better, lengths = 0, []
    # the preset's vocabulary; and 6 words, where the end comes sooner: captions of every length. Sharper
    # weights than the initialisation's: peaked, image-dependent distributions, where greedy and beam differ
    settings = (dict(sharp=3.0), dict(sharp=3.0, vocab_size=6, content_first=3, content_last=5),
                dict(sharp=3.0, vocab_size=6, content_first=1, content_last=2))
    for seed, more in itertools.product(range(4), settings):
        model = tiny(name, seed=seed, max_len=6, **more)
        images = images_for(model, 6, seed)
        greedy = model.greedy(images)
        lengths += _check_rescored(model, images, greedy, f"greedy, seed {seed}")
        for width in (2, 3, 5):
            beam = model.beam(images, width)
            assert (beam.log_prob >= greedy.log_prob - 1e-10).all(), (seed, width)
            strictly_better += int((beam.log_prob > greedy.log_prob + 1e-6).sum())
            lengths += _check_rescored(model, images, beam, f"beam {width}, seed {seed}")
    assert strictly_better > 0                   # beam search did find better captions than greedy on some
    assert {0, 6} <= set(lengths) and any(0 < n < 6 for n in lengths)   # empty, cut at max_len, ended by the model


def _all_captions(model: Captioner, image: torch.Tensor, max_len: int) -> dict[tuple, float]:
    """log p(y | x) of every caption of up to ``max_len`` words, by brute force."""
    V = model.cfg.vocab_size
    a, keys, state0 = model.start(image[None])
    scores = {}
    for n in range(max_len + 1):
        for words in itertools.product(range(1, V), repeat=n):
            state, prev, total = state0, 0, 0.0
            for target in (*words, 0):
                logp, state, _ = model.step(torch.tensor([prev]), state, a, keys)
                total, prev = total + logp[0, target].item(), target
            scores[words] = total
    return scores


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
@pytest.mark.parametrize("content", [0, 2])
def test_a_beam_wide_enough_to_keep_every_caption_finds_the_best_one(length_penalty, content, monkeypatch):
    """Vocabulary {end, 1, 2} and max_len 3: 1 + 2 + 4 + 8 = 15 captions. A beam of 16 never drops
    one, so it must return the exact best (by log p / (n + 1)^λ), whatever greedy finds."""
    found_beyond_greedy = penalty_mattered = 0
    for seed in range(8):
        model = tiny("captioner_shapes_small", seed=seed, sharp=3.0, vocab_size=3, max_len=3, content_first=content,
                     content_last=content)
        images = images_for(model, 6, seed)
        greedy = model.greedy(images)
        without_greedy_fallback(model, monkeypatch)
        beam = model.beam(images, 16, length_penalty=length_penalty)
        monkeypatch.undo()
        for i in range(6):
            scores = _all_captions(model, images[i], 3)
            assert len(scores) == 15
            rank = {w: s / (len(w) + 1) ** length_penalty for w, s in scores.items()}
            best = max(rank, key=rank.get)
            assert tuple(beam.ids[i]) == best, (seed, i)
            assert beam.log_prob[i].item() == pytest.approx(scores[best], abs=1e-9)
            assert greedy.log_prob[i].item() == pytest.approx(scores[tuple(greedy.ids[i])], abs=1e-9)
            found_beyond_greedy += tuple(greedy.ids[i]) != best
            penalty_mattered += best != max(scores, key=scores.get)
    # not vacuous: greedy misses the best caption somewhere, or (λ > 0) the penalty changes which is best
    assert found_beyond_greedy + penalty_mattered > 0


# ---- 6. it learns ----------------------------------------------------------------------------------
def test_a_handful_of_captions_is_learnt_word_for_word(pools):
    from minidraw.data.mnist_captions import MnistCaptions
    data = MnistCaptions("train", pools=pools, seed=0)
    b = data.batch(np.arange(8))
    assert len(set(b.texts(data.vocab))) == 8
    torch.manual_seed(0)
    model = build(preset("captioner_mnist_small", channels=4, feature_size=16, embed_size=16, hidden_size=32,
                         align_size=16))
    truth = [c[: int(n)].tolist() for c, n in zip(b.captions, b.lengths)]

    def exact(decoded):
        return sum(got == want for got, want in zip(decoded.ids, truth))
    assert exact(model.greedy(b.images)) == 0                         # it cannot caption them yet
    assert accuracy(model, data, 8)["exact"] == 0
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for _ in range(300):
        loss = model(b.images, b.captions, b.lengths).loss.mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = model(b.images, b.captions, b.lengths)
    assert out.loss.mean().item() < 0.05 * first
    assert (out.correct == out.count).all()                            # every teacher-forced word, and the end
    assert exact(model.greedy(b.images)) == 8                          # free-running, word for word
    assert exact(model.beam(b.images, 3)) == 8
    assert model.caption(b.images, data.vocab) == b.texts(data.vocab)
    assert accuracy(model, data, 8) == {"exact": 100.0, "slots": 100.0}
    assert model.training                                               # caption / accuracy gave the mode back


# ---- 7. scene agreement ---------------------------------------------------------------------------
def test_agreement_compares_scenes_not_wordings():
    facts = facts_for(mnist_captions.VOCAB)
    assert facts is mnist_captions.scene_facts and facts_for(shapes_grammar.VOCAB) is shapes_grammar.scene_facts
    assert facts_for(Vocabulary.closed(["a", "cat", "."])) is None
    truth = "the digit 3 is on the left of the digit 7 ."
    cases = {
        "the digit 7 is on the right of the digit 3 .": (True, 1.0),         # the same scene, other words
        truth: (True, 1.0),
        "the digit 3 is on the left of the digit 8 .": (False, 0.5),        # one digit wrong
        "the digit 7 is on the left of the digit 3 .": (False, 0.0),        # swapped places
        "the digit 3 is at the top of the digit 7 .": (False, 0.0),         # another relation
        "the digit 3 is at the top left of the image .": (False, 0.0),      # a one-digit scene
        "the digit digit is on the .": (False, 0.0),                        # known words, no template
        "the cat is on the mat .": (False, 0.0),                            # unknown words
    }
    exact, slots = agreement(list(cases), [truth] * len(cases), facts)
    assert exact.tolist() == [e for e, _ in cases.values()]
    assert slots.tolist() == pytest.approx([s for _, s in cases.values()])
    assert mnist_captions.scene_facts("the digit 3 is at the top of the digit 7 .") == \
        mnist_captions.scene_facts("the digit 7 is at the bottom of the digit 3 .")
    one = "the digit 5 is at the top left of the image ."
    e, s = agreement([one, "the digit 5 is at the top right of the image ."], [one, one], facts)
    assert e.tolist() == [True, False] and s.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):                                       # the truth must be in the grammar
        agreement([truth], ["not a caption"], facts)

    shape_facts = shapes_grammar.scene_facts
    A, B = "a large red circle", "a small blue square"
    bg = " on a white background ."
    pairs = [(f"{A} is on the left of {B}{bg}", f"{B} is on the right of {A}{bg}"),
             (f"{A} is above {B}{bg}", f"{B} is below {A}{bg}")]
    for p, t in pairs:
        e, s = agreement([p], [t], shape_facts)
        assert e.tolist() == [True] and s.tolist() == [1.0]
    wrong = [f"{A} is on the left of {B} on a black background .",       # the background differs: 2 of 3 facts
             f"{A} is above {B}{bg}",                                      # the relation differs: 1 of 3
             f"{B} is on the left of {A}{bg}",                             # the objects swapped: 1 of 3
             f"{A} is at the top left{bg}",                                # one object: 1 (background) of 3
             f"{A} is on the left of{bg}"]                                 # outside the grammar
    e, s = agreement(wrong, [f"{A} is on the left of {B}{bg}"] * len(wrong), shape_facts)
    assert e.tolist() == [False] * len(wrong)
    assert s.tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3, 1 / 3, 0.0])


# ---- 8. training and checkpoints -------------------------------------------------------------------
@pytest.fixture
def _offline_mnist(monkeypatch, mnist_dir):
    monkeypatch.setenv("MINIDRAW_DATA", str(mnist_dir.parent))


def test_the_coco_preset_trains_on_the_coco_fixture_and_captions_it(tmp_path):
    """The paper-size COCO captioner takes its vocabulary from the prepared data, trains through the trainer
    (teacher-forced test loss, no closed-grammar accuracy) and writes captions in COCO's words."""
    from minidraw.data.coco import CocoCaptions
    from minidraw.data.coco_fixture import make_tiny_coco
    from minidraw.data.coco_prepare import prepare_coco
    meta = prepare_coco(make_tiny_coco(tmp_path / "raw"), tmp_path / "coco", min_count=1, progress=False)
    cfg = configs.load_config("captioner_coco_paper", None, [*TINY_SETS, "batch_size=4", "eval_every=2",
                                                            "eval_examples=4", "max_steps=2", f"data={tmp_path / 'coco'}"])
    model, log = train.run(cfg, tmp_path / "run", progress=False)
    assert isinstance(model, Captioner) and model.cfg.vocab_size == meta["vocab_size"]
    assert np.isfinite([r["loss"] for r in log if "loss" in r]).all()
    tests = [r for r in log if "test_nats_per_word" in r]
    assert tests and np.isfinite(tests[-1]["test_nats_per_word"]) and "exact_seen" not in tests[-1]
    _, ckpt = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    vocab = Vocabulary.from_dict(ckpt["vocab"])
    data = CocoCaptions("test", tmp_path / "coco")
    images = torch.stack([data[i][0] for i in range(2)])
    for caption in model.eval().caption(images, vocab):
        assert set(caption.split()) <= set(vocab.words[1:])


def test_it_trains_through_the_trainer_and_resumes_bit_exactly(tmp_path, _offline_mnist):
    sets = [*TINY_SETS, "model.max_len=12", "batch_size=8", "eval_every=0", "eval_examples=8", "eval_fidelity=4",
            "checkpoint_every=100"]
    load = lambda steps: configs.load_config("captioner_mnist_small", None, [*sets, f"max_steps={steps}"])  # noqa: E731
    _, straight = train.run(load(5), tmp_path / "a", progress=False)
    train.run(load(2), tmp_path / "b", progress=False)                # stopped at step 2 (its final checkpoint)
    _, resumed = train.run(load(5), tmp_path / "b", progress=False)
    steps = lambda log: [r for r in log if "loss" in r]               # noqa: E731
    assert [r["step"] for r in steps(straight)] == [1, 2, 3, 4, 5]
    assert [r["step"] for r in steps(resumed)] == [3, 4, 5]
    assert [r["loss"] for r in steps(resumed)] == [r["loss"] for r in steps(straight)][2:]   # bit for bit
    assert {"word_acc", "nats_per_word"} <= set(steps(straight)[0])
    assert not any("bound" in r or "test_bound" in r for r in straight)
    tests = [r for r in straight if "test_nats_per_word" in r]
    assert [r["step"] for r in tests] == [5]
    assert 0 <= tests[0]["test_word_acc"] <= 1 and 0 <= tests[0]["test_exact"] <= 1
    for key in ("exact_seen", "slots_seen", "exact_heldout", "slots_heldout"):
        assert 0 <= tests[0][key] <= 100
    a, _ = checkpoint.load(tmp_path / "a" / "checkpoint.pt")
    b, ckpt = checkpoint.load(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["kind"] == "captioner" and isinstance(b, Captioner) and ckpt["step"] == 5
    assert Vocabulary.from_dict(ckpt["vocab"]) == mnist_captions.VOCAB
    assert b.cfg == preset("captioner_mnist_small", **TINY)
    assert a.state_dict().keys() == b.state_dict().keys()
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    fresh = build(b.cfg)
    assert any(not torch.equal(v, w) for v, w in zip(fresh.state_dict().values(), b.state_dict().values()))
    assert [r["step"] for r in rundir.read_metrics(tmp_path / "b") if "loss" in r] == [1, 2, 3, 4, 5]


def test_a_saved_captioner_loads_and_captions_as_before(tmp_path):
    model = tiny("captioner_shapes_small", seed=2, sharp=4.0, dtype=torch.float32)
    checkpoint.save(tmp_path / "c.pt", model, {"vocab": shapes_grammar.VOCAB.to_dict()})
    loaded, ckpt = checkpoint.load(tmp_path / "c.pt")
    assert ckpt["kind"] == "captioner" and isinstance(loaded, Captioner) and loaded.cfg == model.cfg
    images = images_for(model, 4, seed=5)
    assert loaded.greedy(images).ids == model.greedy(images).ids
    assert loaded.beam(images, 3).ids == model.beam(images, 3).ids
    captions, lengths = random_captions([3, 5, 1, 2], model.cfg.vocab_size)
    assert torch.equal(loaded(images, captions, lengths).loss, model(images, captions, lengths).loss)
    assert checkpoint.load(tmp_path / "c.pt")[0].cfg == model.cfg                   # the trainer's re-export too


# ---- 9. bad input ---------------------------------------------------------------------------------
def test_bad_input_gets_a_clear_error():
    model = tiny("captioner_mnist_small", dtype=torch.float32)
    captions, lengths = random_captions([3, 2], model.cfg.vocab_size)
    good = images_for(model, 2)
    for wrong in (torch.rand(2, 3, 60, 60), torch.rand(2, 1, 32, 32), torch.rand(1, 60, 60), torch.rand(2, 1, 60, 59)):
        for call in (lambda x: model(x, captions, lengths), model.greedy, lambda x: model.beam(x, 2),
                     lambda x: model.caption(x, mnist_captions.VOCAB)):
            with pytest.raises(ValueError, match=r"\(M, C, B, A\) = \(M, 1, 60, 60\)"):
                call(wrong)
    for bad, what in ((torch.tensor([3, 0]), "0"), (torch.tensor([4, 2]), "too long"), (torch.tensor([3]), "shape"),
                      (torch.tensor([-1, 2]), "negative")):
        with pytest.raises(ValueError, match=r"lengths must be .* 1\.\.3"):
            model(good, captions, bad)
    with pytest.raises(ValueError, match="width"):
        model.beam(good, 0)
    with pytest.raises(ValueError, match=r"60×7 image is too small for stem_stride=2 and pools=2"):
        CaptionerConfig(A=60, B=7, stem_stride=2, pools=2)
    with pytest.raises(ValueError, match="too small"):
        CaptionerConfig(A=3, B=32, stem_stride=1, pools=2)
    assert CaptionerConfig(A=8, B=8, stem_stride=2, pools=2).grid == (1, 1)     # just large enough
    with pytest.raises(ValueError, match="hidden_size must be a whole number"):
        CaptionerConfig(hidden_size=0)
    for first, last in ((13, 23), (5, 4), (0, 3), (-1, 2)):                 # past the vocabulary, backwards, id 0
        with pytest.raises(ValueError, match="content"):
            CaptionerConfig(vocab_size=23, content_first=first, content_last=last)
    assert CaptionerConfig(vocab_size=23, content_first=13, content_last=22).content_last == 22
    with pytest.raises(ValueError, match="vocabulary"):
        build(preset("captioner_coco_paper"))                              # COCO's vocabulary comes with the data

    class CocoCaptions:                                                    # only its vocabulary matters here
        vocab = Vocabulary.closed(["a", "cat", "."])
    with pytest.raises(ValueError, match="closed grammar.*CocoCaptions"):
        accuracy(model, CocoCaptions(), 2)
