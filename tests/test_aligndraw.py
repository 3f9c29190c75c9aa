"""alignDRAW and its variants: one DRAW step, four ways of reading the caption."""
import copy
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from minidraw import train
from minidraw.configs import preset
from minidraw.data.shapes import ShapesCaptions
from minidraw.data.shapes_grammar import VOCAB as SHAPES_VOCAB
from minidraw.draw import CaptionDraw, CaptionDrawConfig, build

SMALL = dict(A=16, B=12, C=3, T=5, read_N=3, write_N=4, enc_size=32, dec_size=32, z_size=6,
             vocab_size=len(SHAPES_VOCAB), embed_size=8, lang_size=8, align_size=12, sentence_size=10)


def model(variant="align", seed=0, **kw):
    torch.manual_seed(seed)
    return CaptionDraw(CaptionDrawConfig(variant=variant, **{**SMALL, **kw}))


@pytest.fixture(scope="module")
def batch():
    b = ShapesCaptions("train").batch(np.arange(12))     # captions of 13 to 18 words
    images = torch.nn.functional.interpolate(b.images, size=(12, 16))  # (M, C, B, A) = 12 high, 16 wide
    return images, b.captions, b.lengths


def run(m, images, captions, lengths, seed=1, **kw):
    torch.manual_seed(seed)
    return m(images, captions, lengths, **kw)


def test_alpha_sums_to_one_over_words_and_is_zero_on_padding(batch):
    images, captions, lengths = batch
    assert lengths.min() < lengths.max()                  # mixed lengths in the batch
    out = run(model(), images, captions, lengths)
    assert out.alpha.shape == (12, SMALL["T"], captions.shape[1])
    real = torch.arange(captions.shape[1])[None, None] < lengths[:, None, None]   # (M, 1, L)
    torch.testing.assert_close(out.alpha.sum(-1), torch.ones(12, SMALL["T"]))
    assert (out.alpha.masked_select(~real.expand_as(out.alpha)) == 0).all()


@pytest.mark.parametrize("variant", ["align", "noalign"])
def test_padding_never_changes_the_bound_or_the_alignment(batch, variant):
    images, captions, lengths = batch
    m = model(variant)
    wide = torch.cat([captions, torch.zeros(12, 7, dtype=captions.dtype)], 1)      # 7 more <pad>
    a, b = run(m, images, captions, lengths), run(m, images, wide, lengths)
    torch.testing.assert_close(a.bound, b.bound, rtol=0, atol=1e-4)
    torch.testing.assert_close(a.kl, b.kl, rtol=0, atol=1e-5)
    if variant == "align":
        torch.testing.assert_close(b.alpha[..., : captions.shape[1]], a.alpha, rtol=0, atol=1e-6)
        assert (b.alpha[..., captions.shape[1]:] == 0).all()
    # a caption alone, unpadded, gives the same s_t (and α_t) as inside the padded batch
    h = torch.randn(1, SMALL["dec_size"])
    alone = m.context(captions[:1, : lengths[0]], lengths[:1])(h)
    inside = m.context(wide, lengths)(h.expand(12, -1))
    torch.testing.assert_close(alone[0], inside[0][:1], rtol=0, atol=1e-6)


def test_noalign_equals_align_with_uniform_alpha(batch):
    images, captions, lengths = batch
    aligned = model("align")
    with torch.no_grad():
        aligned.align.v.weight.zero_()                     # e_j = 0 for every word: α uniform
    plain = model("noalign", seed=5)
    plain.load_state_dict({k: v for k, v in aligned.state_dict().items() if not k.startswith("align.")})
    a, b = run(aligned, images, captions, lengths), run(plain, images, captions, lengths)
    torch.testing.assert_close(a.bound, b.bound, rtol=0, atol=1e-4)
    torch.testing.assert_close(a.alpha[:, 0, :6].sum(-1), torch.full((12,), 6.0) / lengths.float())


@pytest.mark.parametrize("variant", ["align", "noalign", "skipthought", "draw"])
def test_each_variant_trains_on_a_fixed_batch(batch, variant):
    images, captions, lengths = batch
    m = model(variant)
    sentence = torch.randn(12, SMALL["sentence_size"]) if variant == "skipthought" else None
    kw = {"sentence": sentence} if sentence is not None else {}
    before = torch.stack([run(m, images, captions, lengths, seed=s, **kw).bound.mean() for s in range(3)]).mean()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(40):
        loss = m(images, captions, lengths, **kw).bound.mean()
        opt.zero_grad()
        loss.backward()
        train.clip_each(m.parameters(), 10.0)
        opt.step()
    after = torch.stack([run(m, images, captions, lengths, seed=s, **kw).bound.mean() for s in range(3)]).mean()
    assert after < 0.85 * before, (before.item(), after.item())


def test_generation_single_and_mixed_lengths(batch):
    _, captions, lengths = batch
    m = model()
    g = m.generate(captions, lengths)
    assert g.images.shape == (12, 3, 12, 16) and g.alpha.shape == (12, SMALL["T"], captions.shape[1])
    sharp = m.generate(captions, lengths, temperature=0.0).images          # no noise: z_t = μ^p_t
    for i in (0, 5, 11):                                                  # a caption drawn alone, unpadded,
        alone = m.generate(captions[i:i + 1, : lengths[i]], lengths[i:i + 1], temperature=0.0).images
        torch.testing.assert_close(alone[0], sharp[i])                   # is drawn as within the batch
    ids, n = SHAPES_VOCAB.encode_batch(["a small red circle is in the middle on a black background ."])
    one = m.generate(ids, n)
    assert one.images.shape == (1, 3, 12, 16) and torch.isfinite(one.images).all()
    assert m.generate(ids, n, temperature=0.0).images.shape == (1, 3, 12, 16)
    assert model("draw").generate(M=3).images.shape == (3, 3, 12, 16)


def test_missing_inputs_give_clear_errors(batch):
    images, captions, lengths = batch
    with pytest.raises(ValueError, match="needs captions"):
        model("align")(images)
    with pytest.raises(ValueError, match="sentence embeddings"):
        model("skipthought")(images, captions, lengths)
    with pytest.raises(ValueError, match="variant must be"):
        CaptionDrawConfig(variant="skipthoughts")


def test_iwae_with_captions_is_no_looser(batch):
    images, captions, lengths = batch
    m = model()
    torch.manual_seed(0)
    elbo = torch.stack([m(images[:4], captions[:4], lengths[:4]).bound for _ in range(30)]).mean(0)
    assert (m.iwae(images[:4], captions[:4], lengths[:4], K=30) < elbo).all()


def test_paper_presets_and_checkpoint_round_trip(tmp_path):
    mnist = preset("aligndraw_mnist_paper")
    assert (mnist.A, mnist.B, mnist.C, mnist.lang_size, mnist.align_size, mnist.read_N, mnist.write_N,
            mnist.enc_size, mnist.dec_size, mnist.z_size, mnist.T) == (60, 60, 1, 128, 512, 8, 8, 300, 300, 150, 32)
    coco = preset("aligndraw_coco_paper")
    assert (coco.A, coco.C, coco.read_N, coco.enc_size, coco.z_size, coco.T) == (32, 3, 9, 550, 275, 32)
    small = preset("aligndraw_mnist_small", variant="noalign")
    assert small.variant == "noalign" and small.cond_size == 2 * small.lang_size
    m = build(preset("aligndraw_shapes_small"))
    train.save(tmp_path / "a.pt", m)
    loaded, _ = train.load(tmp_path / "a.pt")
    assert isinstance(loaded, CaptionDraw) and loaded.cfg == m.cfg


def test_derived_sizes_follow_the_settings_through_a_round_trip():
    """cond_size is derived, never stored: after to_dict/from_dict with a setting switched, it
    follows the new setting (a stored value would survive the switch)."""
    st = CaptionDrawConfig(**{**SMALL, "variant": "skipthought", "sentence_encoder": "autoencoder"})
    assert st.cond_size == 2 * SMALL["lang_size"] and st.sentence_size == SMALL["sentence_size"]
    d = st.to_dict()
    assert "cond_size" not in d
    external = CaptionDrawConfig.from_dict({**d, "sentence_encoder": "external"})
    assert external.cond_size == external.sentence_size == SMALL["sentence_size"]
    assert CaptionDrawConfig.from_dict({**d, "variant": "draw"}).cond_size == 0
    assert CaptionDrawConfig.from_dict({**d, "variant": "align", "lang_size": 5}).cond_size == 10
    assert build(CaptionDrawConfig.from_dict({**d, "sentence_encoder": "external"})).draw.decoder.input_size == (
        SMALL["z_size"] + SMALL["sentence_size"])
    # checkpoints written before stored cond_size (and an overwritten sentence_size); both still load
    legacy = {**d, "cond_size": 2 * SMALL["lang_size"], "sentence_size": 2 * SMALL["lang_size"]}
    assert CaptionDrawConfig.from_dict(legacy).cond_size == 2 * SMALL["lang_size"]
    with pytest.raises(ValueError, match="cond_size is derived"):
        CaptionDrawConfig.from_dict({**legacy, "cond_size": 99})
    with pytest.raises(ValueError, match="unknown CaptionDrawConfig field"):
        CaptionDrawConfig.from_dict({**d, "sentence_dim": 3})


def test_shipped_checkpoints_with_stored_derived_sizes_still_load():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    paths = sorted((root / "book" / "checkpoints").glob("*.pt"))
    if not paths:
        pytest.skip("no shipped checkpoints")
    for path in paths:
        m, ckpt = train.load(path)
        if "cond_size" in ckpt["config"]:
            assert m.cfg.cond_size == ckpt["config"]["cond_size"], path


def test_skipthought_with_a_frozen_inside_encoder(batch, tmp_path):
    """skipthought + "autoencoder": the sentence vector comes from a frozen BiLSTM inside the
    model; training never moves it, and it travels in the checkpoint."""
    images, captions, lengths = batch
    m = model("skipthought", sentence_encoder="autoencoder")
    assert m.cfg.cond_size == 2 * SMALL["lang_size"]
    frozen = {k: v.clone() for k, v in m.frozen_language.state_dict().items()}
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    m.train()
    assert not m.frozen_language.training
    for _ in range(3):
        loss = m(images, captions, lengths).bound.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in m.frozen_language.state_dict().items():
        torch.testing.assert_close(v, frozen[k])
    # the frozen encoder's vector is what conditions the model: passing it by hand gives the same bound
    s = __import__("minidraw.text", fromlist=["x"]).sentence_vector(*m.frozen_language(captions, lengths))
    torch.testing.assert_close(run(m, images, captions, lengths).bound, run(m, images, None, None, sentence=s).bound)
    train.save(tmp_path / "st.pt", m)
    back, _ = train.load(tmp_path / "st.pt")
    torch.testing.assert_close(run(back, images, captions, lengths).bound, run(m, images, captions, lengths).bound)
    with pytest.raises(ValueError, match="sentence_encoder"):
        CaptionDrawConfig(variant="skipthought", sentence_encoder="bert")


@pytest.mark.parametrize("values", ["words", "both"])
def test_align_values_average_the_word_embeddings_with_the_same_weights(values):
    """align_values="words": s_t = Σ_j α_j^t E y_j, with α^t scored against the BiLSTM states as in
    the paper; "both": [Σ α h^lang ; Σ α E y]. Padding changes nothing."""
    from minidraw.configs import preset
    from minidraw.data.mnist_captions import VOCAB
    from minidraw.draw import CaptionDraw
    torch.manual_seed(0)
    cfg = preset("aligndraw_mnist_small", T=3, enc_size=8, dec_size=8, z_size=2, align_values=values)
    assert cfg.cond_size == {"words": cfg.embed_size, "both": cfg.embed_size + 2 * cfg.lang_size}[values]
    model = CaptionDraw(cfg).eval()
    ids, lengths = VOCAB.encode_batch(["the digit 3 is at the top left of the image .", "the digit 7 ."])
    h = torch.randn(2, cfg.dec_size)
    s, alpha = model.context(ids, lengths)(h)
    h_lang, mask = model.language(ids, lengths)
    E = model.language.embed(ids)                                                   # (M, L, e)
    by_hand = torch.einsum("ml,mld->md", alpha, E)                                  # Σ_j α_j E y_j
    if values == "both":
        by_hand = torch.cat([torch.einsum("ml,mld->md", alpha, h_lang), by_hand], -1)
    assert torch.allclose(s, by_hand, atol=1e-6)
    ids20, lengths20 = VOCAB.encode_batch(["the digit 3 is at the top left of the image .", "the digit 7 ."],
                                          max_len=20)
    s20, alpha20 = model.context(ids20, lengths20)(h)
    assert torch.allclose(s20, s, atol=1e-6) and torch.allclose(alpha20[:, :ids.shape[1]], alpha, atol=1e-6)
    with pytest.raises(ValueError, match="align_values"):
        preset("aligndraw_mnist_small", align_values="embeddings")


def test_generate_with_nothing_to_generate_from_is_a_clear_error():
    for variant, message in (("align", "nothing to generate from: give captions"),
                             ("skipthought", "or sentence embeddings"), ("draw", "give M")):
        with pytest.raises(ValueError, match=message):
            model(variant).generate()
    assert model("draw").generate(M=2).images.shape == (2, 3, 12, 16)


@pytest.mark.parametrize("field,value", [("lang_size", 0), ("embed_size", -1), ("vocab_size", -2),
                                         ("sentence_size", 0), ("z_size", -3)])
def test_caption_model_sizes_are_validated(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a whole number"):
        CaptionDrawConfig(**{**SMALL, field: value})


# ---- what_where: the generator as a where-LSTM and a what-LSTM -------------------------------------
def _what_where(**kw):
    from minidraw.data.mnist_captions import VOCAB
    cfg = CaptionDrawConfig(A=60, B=60, C=1, T=4, read_N=3, write_N=3, enc_size=16, dec_size=12, z_size=6,
                            vocab_size=len(VOCAB), embed_size=8, lang_size=8, align_size=8, align_values="words",
                            what_where=True, content_first=VOCAB.encode("0")[0], content_last=VOCAB.encode("9")[0],
                            **kw)
    torch.manual_seed(0)
    return CaptionDraw(cfg)


def test_what_where_keeps_the_two_paths_apart():
    """h^what never sees z^where or the words' s_t; h^where never sees z^what or s^what; the window comes from
    h^where alone and the patch from h^what alone."""
    model = _what_where()
    draw, M = model.draw, 5
    cfg = model.cfg
    zw, e, hw = cfg.z_size // 2, cfg.cond_size // 2, cfg.dec_size // 2
    inp = torch.randn(M, cfg.z_size + cfg.cond_size)
    state = (torch.randn(M, cfg.dec_size), torch.randn(M, cfg.dec_size))
    h, c = draw.decoder(inp, state)
    other_where = inp.clone()
    other_where[:, :zw] += 1                                   # z^where
    other_where[:, cfg.z_size: cfg.z_size + e] += 1            # s_t
    h2, _ = draw.decoder(other_where, state)
    assert torch.equal(h2[:, hw:], h[:, hw:]) and not torch.allclose(h2[:, :hw], h[:, :hw])
    other_what = inp.clone()
    other_what[:, zw: cfg.z_size] += 1                         # z^what
    other_what[:, cfg.z_size + e:] += 1                        # s^what
    h3, _ = draw.decoder(other_what, state)
    assert torch.equal(h3[:, :hw], h[:, :hw]) and not torch.allclose(h3[:, hw:], h[:, hw:])
    # the writer: moving h^where moves the window and not the patch; h^what the reverse
    _, w = draw.write(h)
    hm = h.clone()
    hm[:, hw:] += 1
    _, w_m = draw.write(hm)
    assert torch.equal(w.g_x, w_m.g_x) and torch.equal(w.gamma, w_m.gamma)
    patch = lambda hh: draw.write.patch(hh[:, hw:])            # noqa: E731
    hn = h.clone()
    hn[:, :hw] += 1
    assert torch.equal(patch(hn), patch(h))
    # the prior: each half of z from its own LSTM
    mu, _ = draw.prior_params(h, 1)
    mu_n, _ = draw.prior_params(hn, 1)
    assert torch.equal(mu[:, zw:], mu_n[:, zw:]) and not torch.allclose(mu[:, :zw], mu_n[:, :zw])


def test_what_where_reads_only_the_content_words_on_the_what_path():
    """s^what_t = Σ_j α_j [y_j is a content word] E y_j: a caption's other words never reach it."""
    from minidraw.data.mnist_captions import VOCAB
    model = _what_where()
    ids, lengths = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 .",
                                       "the digit 3 is at the top left of the image ."])
    context = model.context(ids, lengths)
    h = torch.randn(2, model.cfg.dec_size)
    s, alpha = context(h)
    e = model.cfg.embed_size
    words = model.language.embed(ids)                            # (M, L, e)
    content = (ids >= model.cfg.content_first) & (ids <= model.cfg.content_last)
    naive = torch.stack([sum(alpha[m, j] * words[m, j] for j in range(ids.shape[1]) if content[m, j])
                         for m in range(2)])
    torch.testing.assert_close(s[:, e:], naive)
    torch.testing.assert_close(s[:, :e], torch.einsum("ml,mle->me", alpha, words))
    # the query is the where half of the state: the what half does not move α
    h2 = h.clone()
    h2[:, model.cfg.dec_size // 2:] += 3
    assert torch.equal(context(h2)[1], alpha)


def test_what_normalise_gives_the_what_path_which_digit_and_not_how_much_attention():
    """``what_normalise``: s^what_t = Σ_j α_j [content] E y_j / Σ_j α_j [content] (a naive sum), so a one-digit
    caption's s^what_t is that digit's embedding at any state, and scaling the generator state (which moves how
    much of α falls on the digits) leaves a one-digit s^what_t unchanged; refused without what_where or with
    what_reset."""
    from minidraw.data.mnist_captions import VOCAB
    model = _what_where(what_normalise=True)
    ids, lengths = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 .",
                                       "the digit 5 is at the top left of the image ."])
    context = model.context(ids, lengths)
    e, words = model.cfg.embed_size, model.language.embed(ids)          # (M, L, e)
    content = (ids >= model.cfg.content_first) & (ids <= model.cfg.content_last)
    for scale in (1.0, 5.0):
        h = scale * torch.randn(2, model.cfg.dec_size, generator=torch.Generator().manual_seed(3))
        s, alpha = context(h)
        naive = torch.stack([sum(alpha[m, j] * words[m, j] for j in range(ids.shape[1]) if content[m, j])
                             / sum(alpha[m, j] for j in range(ids.shape[1]) if content[m, j]) for m in range(2)])
        torch.testing.assert_close(s[:, e:], naive)
        five = words[1, int(content[1].nonzero()[0])]                   # E y_j of the "5"
        torch.testing.assert_close(s[1, e:], five)                      # one digit: its embedding, whatever α
        torch.testing.assert_close(s[:, :e], torch.einsum("ml,mle->me", alpha, words))   # s^where as before
    plain = _what_where()
    s_plain, _ = plain.context(ids, lengths)(h)
    assert not torch.allclose(s_plain[1, e:], plain.language.embed(ids)[1, int(content[1].nonzero()[0])])
    for bad in (dict(what_reset=True), ):
        with pytest.raises(ValueError, match="what_normalise"):
            _what_where(what_normalise=True, **bad)
    with pytest.raises(ValueError, match="what_normalise"):
        CaptionDrawConfig(vocab_size=23, what_normalise=True)


def test_what_share_gives_the_what_path_the_share_apart_from_the_digit():
    """``what_share``: s^what_t = [Σ_j α_j c_j E y_j / m_t ; m_t] with m_t = Σ_j α_j c_j (naive sums): the identity
    as with what_normalise, and the share of α on the content words as one more number, which the what LSTM reads
    (its input grows by one) and the where LSTM does not; refused without what_normalise."""
    from minidraw.data.mnist_captions import VOCAB
    model = _what_where(what_normalise=True, what_share=True)
    e = model.cfg.embed_size
    assert model.cfg.cond_size == 2 * e + 1
    dec = model.draw.decoder
    assert dec.what.input_size == model.cfg.z_size - dec.z_where + e + 1 and dec.where.input_size == dec.z_where + e
    ids, lengths = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 .",
                                       "the digit 5 is at the top left of the image ."])
    s, alpha = model.context(ids, lengths)(torch.randn(2, model.cfg.dec_size, generator=torch.Generator().manual_seed(4)))
    words, content = model.language.embed(ids), (ids >= model.cfg.content_first) & (ids <= model.cfg.content_last)
    share = [sum(float(alpha[m, j]) for j in range(ids.shape[1]) if content[m, j]) for m in range(2)]
    naive = torch.stack([sum(alpha[m, j] * words[m, j] for j in range(ids.shape[1]) if content[m, j]) / share[m]
                         for m in range(2)])
    torch.testing.assert_close(s[:, e:2 * e], naive)
    torch.testing.assert_close(s[:, -1], torch.tensor(share))
    assert 0 < min(share) and max(share) < 1
    # the share reaches h^what and only h^what
    state = (torch.zeros(2, model.cfg.dec_size), torch.zeros(2, model.cfg.dec_size))
    inp = torch.cat([torch.zeros(2, model.cfg.z_size), s], -1)
    bumped = inp.clone()
    bumped[:, -1] += 1.0
    h, h2 = dec(inp, state)[0], dec(bumped, state)[0]
    where = model.cfg.dec_size // 2
    assert torch.equal(h[:, :where], h2[:, :where]) and not torch.allclose(h[:, where:], h2[:, where:])
    out = model(torch.rand(2, 1, 60, 60), ids, lengths)                  # the whole step runs, the bound is finite
    assert torch.isfinite(out.bound).all()
    with pytest.raises(ValueError, match="what_share"):
        _what_where(what_share=True)
    # with what_reset: s^what_t = [E y_k ; m_t], then the restart flag r_t, which stays last
    reset = _what_where(what_reset=True, what_share=True)
    assert reset.cfg.cond_size == 2 * e + 2 and reset.draw.decoder.what.input_size == dec.what.input_size
    s, alpha = reset.context(ids, lengths)(torch.randn(2, model.cfg.dec_size, generator=torch.Generator().manual_seed(5)))
    words = reset.language.embed(ids)
    torch.testing.assert_close(s[:, 2 * e], (alpha * content).sum(-1))
    assert s[:, -1].tolist() == [0.0, 0.0]                                  # the first step never restarts
    k = [max(content[m].nonzero().squeeze(1).tolist(), key=lambda j: alpha[m, j].item()) for m in range(2)]
    torch.testing.assert_close(s[:, e:2 * e], torch.stack([words[m, k[m]] for m in range(2)]))


def test_blind_where_hides_which_digit_from_the_where_path():
    """With ``blind_where`` the where path reads every digit word as one shared token: swapping the digits of a
    caption leaves α_t and s^where_t unchanged (at any state) and changes s^what_t, which still averages the
    true digits' embeddings; without it, the same swap moves α."""
    from minidraw.data.mnist_captions import VOCAB
    a, b = ["the digit 3 is on the left of the digit 7 .", "the digit 1 is at the top left of the image ."], \
           ["the digit 8 is on the left of the digit 0 .", "the digit 5 is at the top left of the image ."]
    ids_a, lengths = VOCAB.encode_batch(a)
    ids_b, _ = VOCAB.encode_batch(b)
    model = _what_where(blind_where=True)
    with torch.no_grad():
        model.content_token.normal_()                             # not the zeros it starts from
    e, h = model.cfg.embed_size, torch.randn(2, model.cfg.dec_size)
    (s_a, alpha_a), (s_b, alpha_b) = model.context(ids_a, lengths)(h), model.context(ids_b, lengths)(h)
    torch.testing.assert_close(alpha_a, alpha_b, rtol=0, atol=0)
    torch.testing.assert_close(s_a[:, :e], s_b[:, :e], rtol=0, atol=0)
    assert not torch.allclose(s_a[:, e:], s_b[:, e:])
    words = model.language.embed(ids_a)                            # (M, L, e)
    content = (ids_a >= model.cfg.content_first) & (ids_a <= model.cfg.content_last)
    torch.testing.assert_close(s_a[:, e:], torch.einsum("ml,mle->me", alpha_a * content, words))
    seen = torch.where(content[..., None], model.content_token, words)
    torch.testing.assert_close(s_a[:, :e], torch.einsum("ml,mle->me", alpha_a, seen))
    sighted = _what_where()
    assert not torch.allclose(sighted.context(ids_a, lengths)(h)[1], sighted.context(ids_b, lengths)(h)[1])
    with pytest.raises(ValueError, match="needs what_where"):
        CaptionDrawConfig(vocab_size=23, blind_where=True)


def test_blind_where_with_sighted_keys_hides_the_digits_from_s_where_only():
    """``blind_where_keys=False``: the keys read the true digits (swapping a caption's digits moves α, exactly as
    the sighted model's α at the same weights), while s^where_t still averages the shared token in place of
    every digit; and the option is refused where the where path would read the digits anyway."""
    from minidraw.data.mnist_captions import VOCAB
    ids_a, lengths = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 ."])
    ids_b, _ = VOCAB.encode_batch(["the digit 8 is on the left of the digit 0 ."])
    model = _what_where(blind_where=True, blind_where_keys=False)
    with torch.no_grad():
        model.content_token.normal_()
    sighted = _what_where()
    sighted.load_state_dict({k: v for k, v in model.state_dict().items() if k != "content_token"})
    e, h = model.cfg.embed_size, torch.randn(1, model.cfg.dec_size)
    (s_a, alpha_a), (s_b, alpha_b) = model.context(ids_a, lengths)(h), model.context(ids_b, lengths)(h)
    assert not torch.allclose(alpha_a, alpha_b)                     # α knows which digits the caption names
    torch.testing.assert_close(alpha_a, sighted.context(ids_a, lengths)(h)[1], rtol=0, atol=0)
    words = model.language.embed(ids_a)                             # (M, L, e)
    content = (ids_a >= model.cfg.content_first) & (ids_a <= model.cfg.content_last)
    blind = torch.where(content[..., None], model.content_token, words)
    torch.testing.assert_close(s_a[:, :e], torch.einsum("ml,mle->me", alpha_a, blind))
    torch.testing.assert_close(s_a[:, e:], torch.einsum("ml,mle->me", alpha_a * content, words))
    for bad in (dict(blind_where_keys=False), dict(blind_where=True, blind_where_keys=False, where_values="states")):
        with pytest.raises(ValueError, match="blind_where_keys"):
            _what_where(**bad)


def test_where_values_states_reads_the_blind_bilstm_states_on_the_where_path():
    """``where_values="states"``: s^where_t = Σ_j α_tj P h^lang_j with h^lang the BiLSTM over the caption as the
    where path sees it (digits hidden with ``blind_where``), checked against a naive sum; swapping the digits
    leaves s^where_t unchanged while the two digit tokens' values differ (the states know which is first)."""
    from minidraw.data.mnist_captions import VOCAB
    model = _what_where(blind_where=True, where_values="states")
    with torch.no_grad():
        model.content_token.normal_()
    ids_a, lengths = VOCAB.encode_batch(["the digit 3 is on the top of the digit 7 ."])
    ids_b, _ = VOCAB.encode_batch(["the digit 8 is on the top of the digit 0 ."])
    e, h = model.cfg.embed_size, torch.randn(1, model.cfg.dec_size)
    (s_a, alpha), (s_b, _) = model.context(ids_a, lengths)(h), model.context(ids_b, lengths)(h)
    torch.testing.assert_close(s_a[:, :e], s_b[:, :e], rtol=0, atol=0)
    words = model.language.embed(ids_a)
    content = (ids_a >= model.cfg.content_first) & (ids_a <= model.cfg.content_last)
    seen = torch.where(content[..., None], model.content_token, words)
    h_lang, _ = model.language(ids_a, lengths, embedded=seen)        # (1, L, 2m)
    values = h_lang @ model.where_proj.weight.T                       # P h^lang_j (1, L, e)
    naive = sum(alpha[0, j] * values[0, j] for j in range(ids_a.shape[1]))
    torch.testing.assert_close(s_a[0, :e], naive)
    first, second = content[0].nonzero().squeeze(1).tolist()
    assert not torch.allclose(values[0, first], values[0, second])  # same token, different place
    with pytest.raises(ValueError, match="where_values"):
        CaptionDrawConfig(vocab_size=23, where_values="pixels")
    with pytest.raises(ValueError, match="needs what_where"):
        CaptionDrawConfig(vocab_size=23, where_values="states")


def test_local_write_puts_the_origin_from_where_and_the_strokes_from_what():
    """``local_write``: (g̃_X, g̃_Y) = W_o h^where + the what path's offset, and σ², δ̃, γ from h^what alone (against
    the formula by hand); moving the origin by k pixels moves the written patch by exactly k pixels."""
    model = _what_where(local_write=True)
    write, cfg = model.draw.write, model.cfg
    hw = cfg.dec_size // 2
    h = torch.randn(3, cfg.dec_size)
    by_hand = write.local.weight @ h[:, hw:].T + write.local.bias[:, None]             # (5, M)
    by_hand[:2] += write.window.weight @ h[:, :hw].T + write.window.bias[:, None]
    torch.testing.assert_close(write.params(h), by_hand.T)
    moved = h.clone()
    moved[:, :hw] += 1                                                                 # another origin
    torch.testing.assert_close(write.params(moved)[:, 2:], write.params(h)[:, 2:], rtol=0, atol=0)
    assert not torch.allclose(write.params(moved)[:, :2], write.params(h)[:, :2])
    # the same strokes, k = 7 pixels to the right: shift the origin's bias by 2k / (A + 1) in g̃_X
    with torch.no_grad():
        write.local.weight.mul_(0.01)                                                  # a small window left of
        write.window.weight.mul_(0.01)                                                 # the centre: no edge in reach
        write.local.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -3.0, 0.0]))              # σ² ≈ 1, δ ≈ 1.5 pixels
        write.window.bias.fill_(-0.3)
        before, _ = write(h)
        write.window.bias[0] += 2 * 7 / (cfg.A + 1)
        after, _ = write(h)
    torch.testing.assert_close(after[..., 7:], before[..., :-7], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="needs what_where"):
        CaptionDrawConfig(vocab_size=23, local_write=True)


def test_what_reset_reads_the_most_attended_content_word_and_restarts_when_it_changes():
    """``what_reset``: s^what_t is E y_k for the content word k with the most α_t (by hand, step by step), the
    restart flag r_t is 0 at the first step and 1 exactly when k changes, and r_t = 1 makes the what LSTM
    start from a zero state while the where LSTM goes on."""
    from minidraw.data.mnist_captions import VOCAB
    model = _what_where(blind_where=True, where_values="states", what_reset=True)
    cfg, e, hw = model.cfg, model.cfg.embed_size, model.cfg.dec_size // 2
    assert cfg.cond_size == 2 * e + 1
    ids, lengths = VOCAB.encode_batch(["the digit 3 is on the top of the digit 7 .",
                                       "the digit 5 is at the bottom right of the image ."])
    words = model.language.embed(ids)
    content = (ids >= cfg.content_first) & (ids <= cfg.content_last)
    context = model.context(ids, lengths)
    g = torch.Generator().manual_seed(0)
    previous, restarts = None, []
    for t in range(8):
        h = 3 * torch.randn(2, cfg.dec_size, generator=g)                  # states that move α about
        s, alpha = context(h)
        for m in range(2):
            positions = content[m].nonzero().squeeze(1).tolist()
            k = max(positions, key=lambda j: alpha[m, j].item())            # the most attended content word
            torch.testing.assert_close(s[m, e:2 * e], words[m, k])
        k_now = [max(content[m].nonzero().squeeze(1).tolist(), key=lambda j: alpha[m, j].item()) for m in range(2)]
        want = [0.0, 0.0] if previous is None else [float(a != b) for a, b in zip(k_now, previous)]
        assert s[:, -1].tolist() == want
        restarts.append(want)
        previous = k_now
    assert any(r[0] for r in restarts) and not any(r[1] for r in restarts)  # one-digit captions never restart
    # the decoder: a restart zeroes the what half of the state before the step, never the where half
    inp = torch.randn(2, cfg.z_size + cfg.cond_size)
    state = (torch.randn(2, cfg.dec_size), torch.randn(2, cfg.dec_size))
    inp[:, -1] = torch.tensor([1.0, 0.0])
    h, c = model.draw.decoder(inp, state)
    zeroed = (state[0].clone(), state[1].clone())
    zeroed[0][:, hw:], zeroed[1][:, hw:] = 0, 0                              # both examples' what halves
    h0, c0 = model.draw.decoder(inp, zeroed)
    torch.testing.assert_close(h[0], h0[0])                                  # restarted: as from zeros
    assert not torch.allclose(h[1, hw:], h0[1, hw:])                         # no restart: the state counts
    no_flag = inp.clone()
    no_flag[:, -1] = 0
    assert torch.equal(h[:, :hw], model.draw.decoder(no_flag, state)[0][:, :hw])  # the where half goes on
    with pytest.raises(ValueError, match="needs what_where"):
        CaptionDrawConfig(vocab_size=23, what_reset=True)


def test_what_reset_passes_the_what_paths_gradient_to_the_alignment_straight_through():
    """The value of s^what_t is E y_{k_t}, but its gradient reaches α (the alignment's weights) as that of the
    α-weighted mean over the content words: without it α would learn nothing from what the what path needs."""
    from minidraw.data.mnist_captions import VOCAB
    model = _what_where(blind_where=True, where_values="states", what_reset=True)
    e = model.cfg.embed_size
    ids, lengths = VOCAB.encode_batch(["the digit 3 is on the top of the digit 7 ."])
    s, alpha = model.context(ids, lengths)(torch.randn(1, model.cfg.dec_size))
    (s[:, e:2 * e] * torch.randn(e)).sum().backward()
    assert model.align.W.weight.grad is not None and model.align.W.weight.grad.abs().sum() > 0


def test_what_reset_with_a_blind_where_path_sees_only_which_digit():
    """Swapping the digits of a caption leaves α_t, s^where_t and the restarts unchanged at every step; s^what_t
    is the embedding of the swapped-in digit."""
    from minidraw.data.mnist_captions import VOCAB
    model = _what_where(blind_where=True, where_values="states", what_reset=True)
    with torch.no_grad():
        model.content_token.normal_()
    e = model.cfg.embed_size
    a, _ = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 ."])
    b, lengths = VOCAB.encode_batch(["the digit 8 is on the left of the digit 0 ."])
    ca, cb = model.context(a, lengths), model.context(b, lengths)
    g = torch.Generator().manual_seed(1)
    swap = {VOCAB.encode("3")[0]: VOCAB.encode("8")[0], VOCAB.encode("7")[0]: VOCAB.encode("0")[0]}
    for _ in range(6):
        h = 3 * torch.randn(1, model.cfg.dec_size, generator=g)
        (sa, alpha_a), (sb, alpha_b) = ca(h), cb(h)
        assert torch.equal(alpha_a, alpha_b) and torch.equal(sa[:, :e], sb[:, :e]) and torch.equal(sa[:, -1], sb[:, -1])
        digit_a = [i for i in swap if torch.allclose(sa[0, e:2 * e], model.language.embed(torch.tensor([i]))[0])]
        assert len(digit_a) == 1
        torch.testing.assert_close(sb[0, e:2 * e], model.language.embed(torch.tensor([swap[digit_a[0]]]))[0])


def test_without_where_latent_no_part_of_z_reaches_the_where_path():
    """``where_latent=False``: all of z_t goes to the what LSTM and its prior; the where LSTM's state, and so
    the window, is the same whatever z_t is, and the model still trains and draws."""
    model = _what_where(blind_where=True, where_latent=False)
    draw, cfg, M = model.draw, model.cfg, 4
    hw = cfg.dec_size // 2
    assert draw.decoder.where.input_size == cfg.cond_size // 2 and draw.decoder.what.input_size == cfg.z_size + cfg.cond_size // 2
    inp = torch.randn(M, cfg.z_size + cfg.cond_size)
    state = (torch.randn(M, cfg.dec_size), torch.randn(M, cfg.dec_size))
    other = inp.clone()
    other[:, : cfg.z_size] += 1                                # all of z_t
    h, _ = draw.decoder(inp, state)
    h2, _ = draw.decoder(other, state)
    assert torch.equal(h[:, :hw], h2[:, :hw]) and not torch.allclose(h[:, hw:], h2[:, hw:])
    mu, logsigma = draw.prior_params(h, 1)
    assert mu.shape == logsigma.shape == (M, cfg.z_size)
    from minidraw.data.mnist_captions import VOCAB
    ids, lengths = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 ."] * 2)
    images = torch.rand(2, 1, 60, 60).bernoulli()
    out = model(images, ids, lengths)
    out.bound.mean().backward()
    assert model.draw.decoder.what.weight_ih.grad.abs().sum() > 0
    assert model.generate(ids, lengths).images.shape == (2, 1, 60, 60)
    with pytest.raises(ValueError, match="needs what_where=True"):
        CaptionDrawConfig(vocab_size=23, where_latent=False)


def test_what_adversary_trains_the_guess_on_the_truth_and_the_what_path_towards_the_mean():
    """``what_adversary``: aux = λ Σ_t (BCE(f(sg h^what_t), y) + BCE(f_sg(h^what_t), ȳ)) over the caption's words
    other than padding and digits, against naive loops over captions, steps and words: f's gradient is that of
    its own cross-entropy alone, h^what's that of the held f's distance from the batch frequencies ȳ alone;
    ``nats`` is what f gains over ȳ."""
    from minidraw.data.mnist_captions import VOCAB
    lam = 3.0
    model = _what_where(what_adversary=lam)
    adversary, cfg = model.adversary, model.cfg
    ids, _ = VOCAB.encode_batch(["the digit 3 is on the top of the digit 7 .",
                                 "the digit 5 is at the bottom right of the image .",
                                 "the digit 1 is on the left of the digit 1 ."])
    M, T, H = 3, 4, cfg.dec_size - cfg.dec_size // 2
    h = torch.randn(M, T, H, generator=torch.Generator().manual_seed(0)).requires_grad_()
    aux, nats = adversary(h, ids)
    aux.sum().backward()
    mine = [p.grad.clone() for p in adversary.parameters()]
    others = [i for i in range(1, cfg.vocab_size) if not cfg.content_first <= i <= cfg.content_last]
    assert len(others) == adversary.f[-1].out_features
    y = torch.tensor([[float(i in row.tolist()) for i in others] for row in ids])            # (M, V')
    assert y[0, others.index(VOCAB.encode("top")[0])] == 1 and y[0, others.index(VOCAB.encode("left")[0])] == 0
    y_bar = y.mean(0)

    def bce(logit, target):                                    # one word's binary cross-entropy, by hand
        p = torch.sigmoid(logit)
        return -(target * torch.log(p) + (1 - target) * torch.log(1 - p))

    adversary.zero_grad()
    own = sum(bce(adversary.f(h.detach()[m, t])[k], y[m, k])
              for m in range(M) for t in range(T) for k in range(len(others)))
    (lam * own).backward()
    for a, b in zip(mine, adversary.parameters()):
        torch.testing.assert_close(a, b.grad)                                     # f learns to read the layout
    frozen = copy.deepcopy(adversary.f).requires_grad_(False)
    h2 = h.detach().clone().requires_grad_()
    confusion = sum(bce(frozen(h2[m, t])[k], y_bar[k]) for m in range(M) for t in range(T) for k in range(len(others)))
    (lam * confusion).backward()
    torch.testing.assert_close(aux.sum(), lam * (own + confusion).detach())
    torch.testing.assert_close(h.grad, h2.grad)                                   # h^what: towards ȳ, nothing else
    prior = sum(bce(torch.logit(y_bar[k].clamp(1e-6, 1 - 1e-6)), y[m, k]) for m in range(M) for k in range(len(others)))
    torch.testing.assert_close(nats, (prior * T - own.detach()) / (M * T))


def _two_scenes(cfg):
    """Two captions (a vertical pair, a corner), random binary 60×60 images and the noise ε of every step, fixed."""
    from minidraw.data.mnist_captions import VOCAB
    ids, lengths = VOCAB.encode_batch(["the digit 3 is at the top of the digit 7 .",
                                       "the digit 5 is at the bottom right of the image ."])
    images = (torch.rand(2, 1, 60, 60, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    noise = torch.randn(cfg.T, 2, cfg.z_size, generator=torch.Generator().manual_seed(2))
    return images, ids, lengths, noise


def test_what_adversary_joins_the_gradient_and_never_the_bound():
    """With the adversary, one sample of the bound is the same as without it (same weights, same noise), the
    adversary's term comes out only in training, and one training step returns the bound, logs what the
    adversary reads and moves the adversary's weights; the setting is checked."""
    model, plain = _what_where(what_adversary=2.0), _what_where()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("adversary.") for k in unexpected)
    images, ids, lengths, noise = _two_scenes(model.cfg)
    out = model(images, ids, lengths, noise=noise)
    torch.testing.assert_close(out.bound, plain(images, ids, lengths, noise=noise).bound)
    assert out.aux.shape == (2,) and (out.aux > 0).all() and out.adversary_nats is not None
    assert out.h_what.shape == (2, model.cfg.T, model.cfg.dec_size - model.cfg.dec_size // 2)
    assert plain(images, ids, lengths, noise=noise).aux is None
    model.eval()
    assert model(images, ids, lengths, noise=noise).aux is None              # evaluation: the bound alone
    model.train()
    cfg = train.TrainConfig(lr=1e-2, cpu_bf16=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.adversary.parameters()]
    logged: dict = {}
    torch.manual_seed(3)
    loss = train.train_step(model, opt, (images, ids, lengths), cfg, 1, metrics=logged)
    torch.manual_seed(3)
    assert loss == pytest.approx(plain(images, ids, lengths).bound.mean().item(), rel=1e-6)  # the bound, no aux
    assert "adversary_nats" in logged
    assert all(not torch.equal(a, b) for a, b in zip(before, model.adversary.parameters()))
    with pytest.raises(ValueError, match="needs what_where"):
        CaptionDrawConfig(vocab_size=23, what_adversary=1.0)
    with pytest.raises(ValueError, match="λ >= 0"):
        _what_where(what_adversary=-1.0)


def test_where_kl_weighs_z_where_in_training_only():
    """``where_kl = β``: in training, aux = (β − 1) Σ_t KL(q(z^where_t) || p(z^where_t)) over the where LSTM's half of
    z_t (the closed form of torch.distributions), so the objective is NLL + β KL^where + KL^what; the bound is the
    same sample as without it, evaluation adds nothing, and init= from weights trained without it works."""
    from torch.distributions import Normal, kl_divergence
    beta = 3.0
    model, plain = _what_where(where_kl=beta), _what_where()
    assert torch.equal(nn.utils.parameters_to_vector(model.parameters()), nn.utils.parameters_to_vector(plain.parameters()))
    images, ids, lengths, noise = _two_scenes(model.cfg)
    out = model(images, ids, lengths, noise=noise)
    torch.testing.assert_close(out.bound, plain(images, ids, lengths, noise=noise).bound)
    l, half = out.latents, model.cfg.z_size // 2                                # z^where: the first half of z_t
    naive = kl_divergence(Normal(l.mu[..., :half], l.logsigma[..., :half].exp()),
                          Normal(l.mu_p[..., :half], l.logsigma_p[..., :half].exp())).sum((1, 2))   # (M,)
    torch.testing.assert_close(out.aux, (beta - 1) * naive)
    assert (naive > 0).all() and plain(images, ids, lengths, noise=noise).aux is None
    model.eval()
    assert model(images, ids, lengths, noise=noise).aux is None
    both = _what_where(where_kl=beta, what_adversary=2.0)
    both.train()
    torch.testing.assert_close(both(images, ids, lengths, noise=noise).aux,
                               _what_where(what_adversary=2.0)(images, ids, lengths, noise=noise).aux + (beta - 1) * naive)
    from minidraw.checkpoint import save
    with tempfile.TemporaryDirectory() as d:
        save(Path(d) / "plain.pt", plain)
        train.init_weights(_what_where(where_kl=beta), str(Path(d) / "plain.pt"))   # a training-only weight
    with pytest.raises(ValueError, match="where_latent"):
        _what_where(where_kl=2.0, where_latent=False)
    with pytest.raises(ValueError, match="β >= 0"):
        _what_where(where_kl=-1.0)


def test_an_adversary_can_be_added_to_saved_weights_and_nothing_else(tmp_path):
    """``init=`` a model saved without the adversary: every weight is copied and the adversary starts fresh; the
    other way round the adversary is left behind; any other difference is still refused."""
    from minidraw.checkpoint import save
    plain, adversarial = _what_where(), _what_where(what_adversary=5.0)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(1.0)                                                       # unlike a fresh model's
    save(tmp_path / "plain.pt", plain)
    train.init_weights(adversarial, str(tmp_path / "plain.pt"))
    for k, v in plain.state_dict().items():
        assert torch.equal(adversarial.state_dict()[k], v), k
    save(tmp_path / "adversarial.pt", adversarial)
    back = _what_where()
    train.init_weights(back, str(tmp_path / "adversarial.pt"))
    assert all(torch.equal(back.state_dict()[k], v) for k, v in plain.state_dict().items())
    with pytest.raises(ValueError, match="different model"):
        train.init_weights(_what_where(what_adversary=5.0, what_reset=True), str(tmp_path / "plain.pt"))


def test_what_where_trains_and_checks_its_settings(batch):
    with pytest.raises(ValueError, match="content words"):
        CaptionDrawConfig(vocab_size=23, what_where=True, align_values="words")
    with pytest.raises(ValueError, match="align_values='words'"):
        CaptionDrawConfig(vocab_size=23, what_where=True, content_first=13, content_last=22)
    cfg = CaptionDrawConfig(A=16, B=12, C=3, T=3, read_N=2, write_N=2, enc_size=16, dec_size=12, z_size=4,
                            vocab_size=len(SHAPES_VOCAB), embed_size=8, lang_size=8, align_size=8, align_values="words",
                            what_where=True, content_first=15, content_last=28)
    torch.manual_seed(0)
    model = CaptionDraw(cfg)
    images, captions, lengths = batch
    before = torch.stack([run(model, images, captions, lengths, seed=s).bound.mean() for s in range(3)]).mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(images, captions, lengths).bound.mean()
        opt.zero_grad()
        loss.backward()
        train.clip_each(model.parameters(), 10.0)
        opt.step()
    after = torch.stack([run(model, images, captions, lengths, seed=s).bound.mean() for s in range(3)]).mean()
    assert after < 0.85 * before, (before.item(), after.item())
    assert model.generate(batch[1], batch[2]).images.shape == batch[0].shape
