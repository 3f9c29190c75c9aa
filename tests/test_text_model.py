"""The bidirectional language model: padding never changes a result, each direction sees
only its own side of the caption, and the sentence vector is the mean over real words."""
import pytest
import torch

from minidraw.text import LanguageModel, pad, sentence_vector

f64 = torch.float64
V, E, H = 23, 12, 10  # vocabulary, embedding, hidden size m per direction


@pytest.fixture
def lm():
    torch.manual_seed(0)
    return LanguageModel(V, E, H).double().eval()


def caption(n, seed=0):
    """n word ids in 1..V-1 (never the padding id 0)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, V, (n,), generator=g).tolist()


def test_shapes_dtypes_and_size(lm):
    ids, lengths = pad([caption(7), caption(3, 1), caption(5, 2)])   # (3, 7)
    h, mask = lm(ids, lengths)
    assert lm.size == 2 * H
    assert h.shape == (3, 7, 2 * H) and h.dtype == f64
    assert mask.dtype == torch.bool and mask.tolist()[1] == [True] * 3 + [False] * 4
    assert sentence_vector(h, mask).shape == (3, 2 * H)


def test_padding_to_any_length_changes_nothing(lm):
    words = caption(6)
    h0, _ = lm(*pad([words]))                                         # L = 6: no padding
    s0 = sentence_vector(h0, torch.ones(1, 6, dtype=torch.bool))
    for L in (7, 9, 20):
        h, mask = lm(*pad([words], L))
        torch.testing.assert_close(h[:, :6], h0, rtol=0, atol=1e-6)
        assert (h[:, 6:] == 0).all()                                  # exact zeros on padding
        assert mask.sum().item() == 6
        torch.testing.assert_close(sentence_vector(h, mask), s0, rtol=0, atol=1e-6)


def test_padding_ids_are_ignored(lm):
    """Whatever sits beyond a caption's length (not only 0) has no effect."""
    ids, lengths = pad([caption(4)], 8)
    h, _ = lm(ids, lengths)
    ids[0, 4:] = torch.tensor(caption(4, 9))
    h2, _ = lm(ids, lengths)
    assert torch.equal(h, h2)


def test_mixed_batch_equals_each_caption_alone(lm):
    rows = [caption(n, seed) for seed, n in enumerate([5, 1, 9, 3, 9, 2])]
    h, mask = lm(*pad(rows))                                          # (6, 9, 2H)
    s = sentence_vector(h, mask)
    for k, r in enumerate(rows):
        h1, m1 = lm(*pad([r]))                                        # alone: L = len(r)
        torch.testing.assert_close(h[k, : len(r)], h1[0], rtol=0, atol=1e-6)
        assert (h[k, len(r):] == 0).all()
        torch.testing.assert_close(s[k], sentence_vector(h1, m1)[0], rtol=0, atol=1e-6)


def test_forward_sees_the_past_backward_the_future(lm):
    n = 8
    words = caption(n)
    h, _ = lm(*pad([words], 11))
    for i in range(n):                                                # perturb word i
        other = list(words)
        other[i] = other[i] % (V - 1) + 1                             # a different real word
        h2, _ = lm(*pad([other], 11))
        diff = (h2 - h)[0, :n].abs().amax(-1)                         # (n,) change at each j ...
        fwd = (h2 - h)[0, :n, :H].abs().amax(-1)                      # ... of →h_j
        bwd = (h2 - h)[0, :n, H:].abs().amax(-1)                      # ... of ←h_j
        assert (fwd[:i] <= 1e-12).all() and (fwd[i:] > 1e-6).all()     # →h_j depends on words ≤ j
        assert (bwd[i + 1:] <= 1e-12).all() and (bwd[: i + 1] > 1e-6).all()  # ←h_j on words ≥ j
        assert (diff > 1e-6).all()


def test_backward_starts_at_the_last_real_word(lm):
    """←h at the last real word has seen only that word: it equals the backward LSTM run on it alone."""
    words = caption(5)
    h, _ = lm(*pad([words], 9))
    h_last, _ = lm(*pad([words[-1:]]))
    torch.testing.assert_close(h[0, 4, H:], h_last[0, 0, H:], rtol=0, atol=1e-12)


def test_sentence_vector_is_the_naive_mean():
    torch.manual_seed(1)
    M, L, D = 4, 7, 5
    h = torch.randn(M, L, D, dtype=f64)                               # padding not zero: must be ignored
    lengths = torch.tensor([7, 1, 3, 5])
    mask = torch.arange(L) < lengths[:, None]
    s = sentence_vector(h, mask)
    for k in range(M):
        n = int(lengths[k])
        naive = sum(h[k, j] for j in range(n)) / n
        torch.testing.assert_close(s[k], naive, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("lengths,match", [([3, 0], "captions \\[1\\] have lengths \\[0\\]"),
                                           ([5, 2], "1..L = 1..4"),
                                           ([-1, 2], "lengths must be in 1..L")])
def test_bad_lengths_are_clear_errors(lm, lengths, match):
    ids = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=match):
        lm(ids, torch.tensor(lengths))


def test_bad_shapes_are_errors(lm):
    with pytest.raises(ValueError, match="shape \\(M, L\\)"):
        lm(torch.ones(4, dtype=torch.long), torch.tensor([4]))
    with pytest.raises(ValueError, match="shape \\(M,\\)"):
        lm(torch.ones(2, 4, dtype=torch.long), torch.tensor([4]))


def test_gradients_reach_embedding_and_both_directions(lm):
    ids, lengths = pad([caption(5), caption(2, 1)])
    h, mask = lm(ids, lengths)
    sentence_vector(h, mask).sum().backward()
    assert lm.embed.weight.grad[0].abs().sum() == 0                   # <pad> row: no gradient
    assert lm.embed.weight.grad[ids[0]].abs().sum() > 0
    for name, p in lm.lstm.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_frozen_sentence_encoder_is_optional_with_a_clear_message(monkeypatch):
    import sys

    from minidraw.text import FrozenSentenceEncoder
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(ImportError, match=r"minidraw\[skipthought\]"):
        FrozenSentenceEncoder()


def test_frozen_sentence_encoder_wraps_a_sentence_transformer(monkeypatch):
    import sys
    import types

    import numpy as np

    from minidraw.text import FrozenSentenceEncoder

    class Fake:  # the two methods minidraw uses, with sentence-transformers' signatures
        def __init__(self, name, device=None):
            self.name = name

        def get_sentence_embedding_dimension(self):
            return 4

        def encode(self, texts, convert_to_numpy=True):
            return np.array([[len(t), 0, 1, 2] for t in texts], dtype=np.float32)

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=Fake))
    enc = FrozenSentenceEncoder()
    out = enc(["a red circle", "b"])
    assert enc.size == 4 and out.shape == (2, 4) and out.dtype == torch.float32 and out[0, 0] == 12
    with pytest.raises(TypeError, match="list of captions"):
        enc("a red circle")


def test_caption_autoencoder_learns_and_its_vector_keeps_word_order():
    """The offline skip-thought stand-in: trained on text alone, its frozen vector tells
    "3 left of 7" from "7 left of 3" (a bag of words could not)."""
    from minidraw.data.mnist_captions import VOCAB
    from minidraw.text import SentenceAutoencoder, pretrain_sentence_encoder

    class Captions:  # the caption side of a data set: every template and digit pair
        def __init__(self):
            from minidraw.data.mnist_captions import TEMPLATES
            texts = [t.format(d=d, e=e) for t in TEMPLATES for d in range(10) for e in range(10) if d != e]
            self.ids, self.lengths = VOCAB.encode_batch(texts)

        def __len__(self):
            return len(self.lengths)

        def batch(self, idx):
            from types import SimpleNamespace
            return SimpleNamespace(captions=self.ids[idx], lengths=self.lengths[idx])

    data = Captions()
    torch.manual_seed(0)
    untrained = SentenceAutoencoder(len(VOCAB)).requires_grad_(False)
    start = untrained(data.ids[:64], data.lengths[:64]).mean().item()
    encoder, loss = pretrain_sentence_encoder(data, len(VOCAB), steps=150, seed=0)
    assert loss < 0.25 * start, (start, loss)
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    a, n = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 .",
                               "the digit 7 is on the left of the digit 3 ."])
    s = sentence_vector(*encoder(a, n))
    assert (s[0] - s[1]).norm() > 0.1 * s[0].norm()
    again, _ = pretrain_sentence_encoder(data, len(VOCAB), steps=150, seed=0)   # a function of the seed
    for p, q in zip(encoder.parameters(), again.parameters()):
        torch.testing.assert_close(p, q)
