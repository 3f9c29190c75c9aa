"""The paper's alignDRAW and its variants: one DRAW step, three ways of reading the caption."""
import numpy as np
import pytest
import torch

from minidraw import checkpoint, optim, train
from minidraw.aligndraw import CaptionDraw, CaptionDrawConfig
from minidraw.configs import preset
from minidraw.data.shapes import ShapesCaptions
from minidraw.data.shapes_grammar import VOCAB as SHAPES_VOCAB
from minidraw.models import build

SMALL = dict(A=16, B=12, C=3, T=5, read_N=3, write_N=4, enc_size=32, dec_size=32, z_size=6,
             vocab_size=len(SHAPES_VOCAB), embed_size=8, lang_size=8, align_size=12, sentence_size=10)


def model(variant="align", seed=0, **kw):
    torch.manual_seed(seed)
    return CaptionDraw(CaptionDrawConfig(variant=variant, **{**SMALL, **kw}))


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


@pytest.mark.parametrize("variant", ["align", "noalign", "skipthought"])
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
        optim.clip_each(m.parameters(), 10.0)
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
    checkpoint.save(tmp_path / "a.pt", m)
    loaded, _ = checkpoint.load(tmp_path / "a.pt")
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
        m, ckpt = checkpoint.load(path)
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
    checkpoint.save(tmp_path / "st.pt", m)
    back, _ = checkpoint.load(tmp_path / "st.pt")
    torch.testing.assert_close(run(back, images, captions, lengths).bound, run(m, images, captions, lengths).bound)
    with pytest.raises(ValueError, match="sentence_encoder"):
        CaptionDrawConfig(variant="skipthought", sentence_encoder="bert")


def test_generate_with_nothing_to_generate_from_is_a_clear_error():
    for variant, message in (("align", "nothing to generate from: give captions"),
                             ("skipthought", "or sentence embeddings")):
        with pytest.raises(ValueError, match=message):
            model(variant).generate()
    with pytest.raises(ValueError, match="an unconditional DRAW is DrawConfig"):
        CaptionDrawConfig(variant="draw")


@pytest.mark.parametrize("field,value", [("lang_size", 0), ("embed_size", -1), ("vocab_size", -2),
                                         ("sentence_size", 0), ("z_size", -3)])
def test_caption_model_sizes_are_validated(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a whole number"):
        CaptionDrawConfig(**{**SMALL, field: value})
