"""Bahdanau alignment against a naive loop written from the paper's equations."""
import math

import pytest
import torch

from minidraw.align import Alignment
from minidraw.text import LanguageModel, pad, sentence_vector

f64 = torch.float64
M, L, D, DEC, K = 4, 7, 6, 5, 8          # captions, words, lang size 2m, decoder size, align size
LENGTHS = torch.tensor([7, 1, 4, 6])


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(L) < LENGTHS[:, None]                          # (M, L)
    h_lang = torch.randn(M, L, D, generator=g, dtype=f64) * mask[..., None]  # zeros on padding
    h_dec = torch.randn(M, DEC, generator=g, dtype=f64)
    return h_dec, h_lang, mask


@pytest.fixture
def align():
    torch.manual_seed(0)
    return Alignment(D, DEC, K).double()


@torch.no_grad()
def naive(align, h_dec, h_lang, lengths):
    """e_j = vᵀ tanh(U h_j + W h + b), softmax over the n real words, s = Σ α_j h_j; one word at a time."""
    U, W, b, v = align.U.weight, align.W.weight, align.W.bias, align.v.weight[0]
    s_all, a_all = torch.zeros(M, D, dtype=f64), torch.zeros(M, L, dtype=f64)
    for m in range(len(h_dec)):
        n = int(lengths[m])
        e = [float(v @ torch.tanh(U @ h_lang[m, j] + W @ h_dec[m] + b)) for j in range(n)]
        z = sum(math.exp(x - max(e)) for x in e)
        for j in range(n):
            a_all[m, j] = math.exp(e[j] - max(e)) / z
            s_all[m] += a_all[m, j] * h_lang[m, j]
    return s_all, a_all


def test_shapes_and_hand_chosen_weights_attend_to_the_chosen_word(align):
    """With U = I, W = 0, b = 0 and v = 10·e_0, e_j = 10 tanh(h^lang_j[0]): the word with the
    largest first coordinate takes (almost) all the weight, and s_t is (almost) its state."""
    h_dec, h_lang, mask = inputs()
    s, alpha = align(h_dec, align.keys(h_lang), h_lang, mask)
    assert s.shape == (M, D) and alpha.shape == (M, L)
    chosen = Alignment(D, DEC, D).double()
    with torch.no_grad():
        chosen.U.weight.copy_(torch.eye(D, dtype=f64))
        chosen.W.weight.zero_(), chosen.W.bias.zero_()
        chosen.v.weight.zero_()[0, 0] = 10.0
    h = torch.zeros(M, L, D, dtype=f64)
    h[:, :, 0] = -1.0
    h[torch.arange(M), LENGTHS - 1, 0] = 1.0                          # each caption's last real word stands out
    h[:, :, 1] = torch.arange(L, dtype=f64)                            # a label: the word's position
    s, alpha = chosen(h_dec, chosen.keys(h), h, mask)
    assert (alpha.argmax(1) == LENGTHS - 1).all() and (alpha.max(1).values > 0.99).all()
    torch.testing.assert_close(s[:, 1], (LENGTHS - 1).to(f64), atol=0.05, rtol=0)


def test_alpha_sums_to_one_and_is_zero_on_padding(align):
    h_dec, h_lang, mask = inputs()
    _, alpha = align(h_dec, align.keys(h_lang), h_lang, mask)
    torch.testing.assert_close(alpha.sum(1), torch.ones(M, dtype=f64), rtol=0, atol=1e-14)
    assert (alpha[~mask] == 0).all() and (alpha[mask] > 0).all()
    assert alpha[1, 0] == 1                                            # a one-word caption


def test_matches_naive_loop(align):
    with torch.no_grad():
        for p in align.parameters():                                   # larger weights: sharper α
            p.mul_(3)
    for seed in range(3):
        h_dec, h_lang, mask = inputs(seed)
        s, alpha = align(h_dec, align.keys(h_lang), h_lang, mask)
        s_ref, a_ref = naive(align, h_dec, h_lang, LENGTHS)
        torch.testing.assert_close(alpha, a_ref, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(s, s_ref, rtol=1e-12, atol=1e-14)


def test_keys_are_U_applied_to_each_word(align):
    _, h_lang, _ = inputs()
    keys = align.keys(h_lang)                                          # (M, L, K)
    for m in range(M):
        for j in range(L):
            torch.testing.assert_close(keys[m, j], align.U.weight @ h_lang[m, j], rtol=1e-13, atol=1e-14)


def test_keys_once_then_many_steps(align):
    """Precomputed keys give the same result as recomputing them at every step."""
    _, h_lang, mask = inputs()
    keys = align.keys(h_lang)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        h_dec = torch.randn(M, DEC, generator=g, dtype=f64)
        a = align(h_dec, keys, h_lang, mask)
        b = align(h_dec, align.keys(h_lang), h_lang, mask)
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_zero_v_gives_uniform_alpha_and_the_sentence_vector(align):
    h_dec, h_lang, mask = inputs()
    with torch.no_grad():
        align.v.weight.zero_()
    s, alpha = align(h_dec, align.keys(h_lang), h_lang, mask)
    uniform = mask.to(f64) / LENGTHS[:, None].to(f64)
    torch.testing.assert_close(alpha, uniform, rtol=0, atol=1e-15)
    torch.testing.assert_close(s, sentence_vector(h_lang, mask), rtol=1e-13, atol=1e-14)


def test_gradients_reach_U_W_b_v(align):
    h_dec, h_lang, mask = inputs()
    h_lang.requires_grad_(True)
    h_dec.requires_grad_(True)
    s, alpha = align(h_dec, align.keys(h_lang), h_lang, mask)
    (s.pow(2).sum() + (alpha * torch.arange(L, dtype=f64)).sum()).backward()
    for name, p in [("U", align.U.weight), ("W", align.W.weight), ("b", align.W.bias), ("v", align.v.weight)]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert torch.isfinite(h_lang.grad).all() and (h_lang.grad[~mask] == 0).all()  # padding gets no gradient
    assert torch.isfinite(h_dec.grad).all() and h_dec.grad.abs().sum() > 0


def test_padding_invariance_through_the_language_model():
    torch.manual_seed(0)
    V, H, DECODER = 20, 6, 9
    lm = LanguageModel(V, 8, H).double().eval()
    align = Alignment(2 * H, DECODER, 11).double()
    rows = [[3, 5, 7, 2, 9], [4, 1], [8, 8, 6, 2]]
    h_dec = torch.randn(len(rows), DECODER, dtype=f64)
    results = []
    for L_pad in (5, 6, 12):
        h_lang, mask = lm(*pad(rows, L_pad))
        s, alpha = align(h_dec, align.keys(h_lang), h_lang, mask)
        assert (alpha[:, 5:] == 0).all()
        results.append((s, alpha[:, :5]))
    for s, alpha in results[1:]:
        torch.testing.assert_close(s, results[0][0], rtol=0, atol=1e-6)
        torch.testing.assert_close(alpha, results[0][1], rtol=0, atol=1e-6)
    for k, r in enumerate(rows):                                       # and each caption alone
        h1, m1 = lm(*pad([r]))
        s1, a1 = align(h_dec[k:k + 1], align.keys(h1), h1, m1)
        torch.testing.assert_close(results[0][0][k], s1[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(results[0][1][k, : len(r)], a1[0], rtol=0, atol=1e-6)


def test_most_attended_picks_the_candidate_with_the_most_weight_over_the_steps():
    from minidraw.align import most_attended
    alpha = torch.zeros(2, 4, 5)                      # (M, T, L)
    alpha[0, :2, 1], alpha[0, 2:, 3] = 0.9, 0.6       # caption 0: word 1 early, word 3 late
    alpha[1, :, 3] = 0.5                              # caption 1: word 3 throughout...
    alpha[1, 0, 1] = 0.8                              # ...but word 1 peaks once in the first half
    positions = torch.tensor([[1, 3], [1, 3]])
    assert most_attended(alpha, positions, slice(0, 2)).tolist() == [0, 1]
    assert most_attended(alpha, positions, slice(2, 4)).tolist() == [1, 1]
    assert most_attended(alpha, positions).tolist() == [0, 1]        # 1.8 vs 1.2; 0.8 vs 2.0
    assert most_attended(alpha, torch.tensor([[3, 1], [3, 1]]), slice(0, 2)).tolist() == [1, 0]


def test_a_caption_of_padding_only_is_a_clear_error_not_nan(align):
    h_dec, h_lang, mask = inputs()
    mask[2] = False                                                    # caption 2: no real word
    with pytest.raises(ValueError, match=r"caption\(s\) \[2\] have no real words"):
        align(h_dec, align.keys(h_lang), h_lang, mask)
