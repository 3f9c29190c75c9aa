"""The paper's baselines: conditional fc and conv–deconv VAEs, trained and scored like alignDRAW."""
import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from minidraw import checkpoint, configs, train
from minidraw.baselines import BaselineConfig, ConditionalVAE, conv_sizes
from minidraw.bound import bernoulli_nll
from minidraw.configs import preset
from minidraw.data.batches import Batches, fixed_batches
from minidraw.data.shapes import ShapesCaptions
from minidraw.data.shapes_grammar import VOCAB as SHAPES_VOCAB
from minidraw.models import build

KINDS = ("fc", "conv")
TINY = dict(vocab_size=len(SHAPES_VOCAB), embed_size=8, lang_size=8, hidden=24, channels=4, z_size=5)


def model(kind="fc", shape=(3, 32, 32), seed=0, **kw):
    C, B, A = shape
    torch.manual_seed(seed)
    return ConditionalVAE(BaselineConfig(A=A, B=B, C=C, kind=kind, **{**TINY, **kw}))


@pytest.fixture(scope="module")
def shapes():
    b = ShapesCaptions("train").batch(np.arange(10))      # captions of 13 to 18 words
    return b.images, b.captions, b.lengths


def images_for(shape, M=10, seed=0):
    return torch.rand(M, *shape, generator=torch.Generator().manual_seed(seed)).round()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, 60, 60), (3, 32, 32), (2, 27, 45)])
def test_every_output_has_its_shape(shapes, kind, shape):
    _, captions, lengths = shapes
    M, z = len(captions), TINY["z_size"]
    m = model(kind, shape)
    x = images_for(shape, M)
    out = m(x, captions, lengths, keep_canvases=True)
    assert out.canvas.shape == (M, *shape) and out.canvases.shape == (1, M, *shape)
    assert out.nll.shape == out.log_qz.shape == out.log_pz.shape == out.bound.shape == (M,)
    assert out.kl.shape == (M, 1) and out.read is None and out.write is None and out.alpha is None
    assert m(x, captions, lengths).canvases is None
    g = m.generate(captions, lengths)
    assert g.images.shape == (M, *shape) and g.canvases.shape == (1, M, *shape)
    assert g.write is None and g.alpha is None
    s = m.sentence(captions, lengths)                                    # temperature 0: z = 0, the prior's mean
    torch.testing.assert_close(m.generate(captions, lengths, temperature=0.0).images,
                               torch.sigmoid(m.decoder(torch.zeros(M, z), s)))
    assert m.generate(captions[:1], lengths[:1], M=4).images.shape == (4, *shape)   # one caption, 4 drawings
    assert m.iwae(x[:3], captions[:3], lengths[:3], K=4).shape == (3,)
    with pytest.raises(ValueError, match="noise must have shape"):
        m(x, captions, lengths, noise=torch.zeros(2, M, z))


def test_conv_sizes_halve_to_a_small_map_and_the_decoder_undoes_them_exactly():
    assert conv_sizes(60, 60) == [(60, 60), (30, 30), (15, 15), (7, 7), (3, 3)]
    assert conv_sizes(32, 32) == [(32, 32), (16, 16), (8, 8), (4, 4)]
    m = model("conv", (2, 27, 45))
    assert m.decoder.start[1:] == (3, 5)
    assert m.decoder(torch.zeros(1, TINY["z_size"]), torch.zeros(1, 16)).shape == (1, 2, 27, 45)


@pytest.mark.parametrize("kind", KINDS)
def test_bound_is_nll_plus_the_closed_form_kl_to_the_standard_normal(shapes, kind):
    images, captions, lengths = shapes
    m = model(kind)
    noise = torch.randn(1, len(images), TINY["z_size"])
    out = m(images, captions, lengths, noise=noise)
    torch.testing.assert_close(out.nll, bernoulli_nll(out.canvas, images))
    mu, logsigma = m.encode(images, m.sentence(captions, lengths))
    q, p = Normal(mu, logsigma.exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(out.kl[:, 0], kl_divergence(q, p).sum(-1))
    z = mu + logsigma.exp() * noise[0]                                   # z = μ + σ ε
    torch.testing.assert_close(out.log_qz, q.log_prob(z).sum(-1))
    torch.testing.assert_close(out.log_pz, p.log_prob(z).sum(-1))
    torch.testing.assert_close(out.canvas, m.decoder(z, m.sentence(captions, lengths)))
    nll = torch.nn.functional.binary_cross_entropy_with_logits(out.canvas, images, reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(out.bound, nll + kl_divergence(q, p).sum(-1))    # −L, every term by hand


@pytest.mark.parametrize("kind", KINDS)
def test_padding_never_changes_the_bound(shapes, kind):
    images, captions, lengths = shapes
    assert lengths.min() < lengths.max()                                 # mixed lengths in the batch
    m = model(kind)
    wide = torch.cat([captions, torch.zeros(len(captions), 7, dtype=captions.dtype)], 1)   # 7 more <pad>
    noise = torch.randn(1, len(images), TINY["z_size"])
    a, b = m(images, captions, lengths, noise=noise), m(images, wide, lengths, noise=noise)
    torch.testing.assert_close(a.bound, b.bound, rtol=1e-6, atol=1e-4)
    alone = m(images[:1], captions[:1, : lengths[0]], lengths[:1], noise=noise[:, :1])   # unpadded, alone
    torch.testing.assert_close(alone.bound, a.bound[:1], rtol=1e-6, atol=1e-4)   # ~2000 nats: float32 resolution


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_noise_makes_the_pass_deterministic_and_the_caption_matters(shapes, kind):
    images, captions, lengths = shapes
    m = model(kind)
    noise = torch.randn(1, len(images), TINY["z_size"])
    a, b = m(images, captions, lengths, noise=noise), m(images, captions, lengths, noise=noise)
    assert torch.equal(a.bound, b.bound) and torch.equal(a.canvas, b.canvas)
    assert not torch.equal(m(images, captions, lengths, noise=-noise).bound, a.bound)
    other = m(images, captions.roll(1, 0), lengths.roll(1, 0), noise=noise)
    assert not torch.allclose(other.bound, a.bound)                     # conditioned on the sentence
    s = m.sentence(captions, lengths)                                    # a given sentence vector = the captions
    torch.testing.assert_close(m(images, sentence=s, noise=noise).bound, a.bound)


@pytest.mark.parametrize("kind", KINDS)
def test_iwae_is_the_bound_for_one_sample_and_no_looser_for_many(shapes, kind):
    images, captions, lengths = shapes
    x, y, n = images[:4], captions[:4], lengths[:4]
    m = model(kind)
    with torch.no_grad():
        bounds, one = [], []
        for seed in range(200):
            torch.manual_seed(seed)
            bounds.append(m(x, y, n).bound)
            torch.manual_seed(seed)                                      # the same ε: L_1 = log p(x,z) − log q(z)
            one.append(m.iwae(x, y, n, K=1))
        bounds, one = torch.stack(bounds), torch.stack(one)             # (200, 4)
    se = (one - bounds).std(0) / 200 ** 0.5
    assert ((one.mean(0) - bounds.mean(0)).abs() < 4 * se + 1e-3).all()   # E[−L_1] = −L
    torch.manual_seed(0)
    assert (m.iwae(x, y, n, K=200) < bounds.mean(0) + 4 * bounds.std(0) / 200 ** 0.5).all()


def test_config_checks_and_presets():
    with pytest.raises(ValueError, match="kind must be one of"):
        BaselineConfig(kind="mlp")
    with pytest.raises(ValueError, match="T must be 1"):
        BaselineConfig(T=4)
    with pytest.raises(ValueError, match="unknown BaselineConfig field"):
        BaselineConfig.from_dict({"kind": "fc", "read_N": 3})
    assert BaselineConfig.from_dict(BaselineConfig(kind="conv").to_dict()) == BaselineConfig(kind="conv")
    small = {}
    for data, shape, vocab in (("mnist", (1, 60, 60), 23), ("shapes", (3, 32, 32), 31)):
        for kind in KINDS:
            cfg = preset(f"{kind}vae_{data}_small")
            assert (cfg.kind, (cfg.C, cfg.B, cfg.A), cfg.vocab_size, cfg.T) == (kind, shape, vocab, 1)
            small[cfg.kind, data] = sum(p.numel() for p in build(cfg).parameters())
    assert all(3e5 < n < 5e5 for n in small.values()), small            # like aligndraw_*_small (~0.4 M)
    for kind in KINDS:
        coco = preset(f"{kind}vae_coco_paper")
        assert (coco.C, coco.B, coco.A, coco.vocab_size) == (3, 32, 32, 0)   # 0: the prepared vocabulary decides
    assert preset("fcvae_mnist_small", kind="conv", z_size=7).kind == "conv"
    cfg = configs.load_config("fcvae_shapes_small", None, ["model.kind=conv", "model.channels=8"])
    assert (preset(cfg.preset, **cfg.model).kind, preset(cfg.preset, **cfg.model).channels) == ("conv", 8)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip_gives_the_same_bounds(shapes, kind, tmp_path):
    images, captions, lengths = shapes
    m = model(kind)
    checkpoint.save(tmp_path / "vae.pt", m, {"step": 3})
    loaded, ckpt = checkpoint.load(tmp_path / "vae.pt")
    assert isinstance(loaded, ConditionalVAE) and loaded.cfg == m.cfg and ckpt["kind"] == "baseline"
    noise = torch.randn(1, len(images), TINY["z_size"])
    assert torch.equal(loaded(images, captions, lengths, noise=noise).bound,
                       m(images, captions, lengths, noise=noise).bound)


# ---- with the trainer, on MNIST with captions ------------------------------------------------
@pytest.fixture
def mnist_env(monkeypatch, mnist_dir):
    monkeypatch.setenv("MINIDRAW_DATA", str(mnist_dir.parent))


@pytest.fixture(scope="module")
def mnist_captions(pools):
    from minidraw.data.mnist_captions import MnistCaptions
    return MnistCaptions("train", pools, seed=0), MnistCaptions("test", pools, seed=0)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_trains_with_the_trainer(mnist_captions, kind):
    train_set, test_set = mnist_captions
    torch.manual_seed(0)
    m = build(preset(f"{kind}vae_mnist_small", hidden=32, channels=4, z_size=8, embed_size=8, lang_size=16))
    test = fixed_batches(test_set, 64, batch_size=32)
    before, _ = train.dataset_bound(m, test)
    cfg = configs.TrainConfig(batch_size=16, lr=3e-3, max_steps=50)
    log = train.fit(m, Batches(train_set, cfg.batch_size, seed=0), cfg, progress=False)
    after, _ = train.dataset_bound(m, test)
    assert len(log) == 50 and all(np.isfinite(r["bound"]) for r in log)
    assert after < 0.5 * before, (before, after)                         # from ~2500 nats (σ(0) everywhere)


TINY_RUN = ["model.hidden=16", "model.channels=4", "model.z_size=4", "model.embed_size=8", "model.lang_size=8",
            "batch_size=8", "eval_examples=16", "eval_every=0", "checkpoint_every=2", "seed=1"]


@pytest.mark.parametrize("name", ["fcvae_mnist_small", "convvae_shapes_small"])
def test_run_trains_checkpoints_and_resumes_a_baseline(mnist_env, tmp_path, name):
    out = tmp_path / "run"
    model, log = train.run(configs.load_config(name, None, [*TINY_RUN, "max_steps=3"]), out, progress=False)
    assert isinstance(model, ConditionalVAE) and [r["step"] for r in log if "bound" in r] == [1, 2, 3]
    assert np.isfinite([r["test_bound"] for r in log if "test_bound" in r]).all()
    loaded, ckpt = checkpoint.load(out / "checkpoint.pt")
    assert ckpt["kind"] == "baseline" and ckpt["step"] == 3 and loaded.cfg == model.cfg
    assert len(ckpt["vocab"]["words"]) == loaded.cfg.vocab_size
    _, resumed = train.run(configs.load_config(name, None, [*TINY_RUN, "max_steps=5"]), out, progress=False)
    assert [r["step"] for r in resumed if "bound" in r] == [4, 5]


def test_the_train_command_takes_a_baseline_preset(mnist_env, tmp_path, capsys):
    from minidraw.cli import main
    assert main(["train", "--preset", "convvae_mnist_small", "--out", str(tmp_path), "--quiet", "--max-steps", "2",
                 "--set", *TINY_RUN]) == 0
    assert "test −L" in capsys.readouterr().out
    assert isinstance(checkpoint.load(tmp_path / "checkpoint.pt")[0], ConditionalVAE)


@pytest.mark.parametrize("kind", KINDS)
def test_retrieval_scores_of_a_baseline(kind):
    from minidraw.measures import retrieval_scores
    m = model(kind)
    scores = retrieval_scores(m, ShapesCaptions("test"), n_queries=4, n_candidates=5, pool=10)
    assert scores.shape == (4, 5) and np.isfinite(scores).all()
    again = retrieval_scores(m, ShapesCaptions("test"), n_queries=4, n_candidates=5, pool=10, batch_size=3)
    np.testing.assert_allclose(scores, again, rtol=1e-5)                 # common noise per caption


def test_a_coco_baseline_takes_its_vocabulary_from_the_prepared_data(tmp_path):
    from minidraw.data.coco_fixture import make_tiny_coco
    from minidraw.data.coco_prepare import prepare_coco
    meta = prepare_coco(make_tiny_coco(tmp_path / "raw"), tmp_path / "coco", min_count=1, progress=False)
    assert preset("convvae_coco_paper").vocab_size == 0
    cfg = configs.load_config("convvae_coco_paper", None, [*TINY_RUN, "max_steps=2", f"data={tmp_path / 'coco'}"])
    model, log = train.run(cfg, tmp_path / "run", progress=False)
    assert model.cfg.vocab_size == meta["vocab_size"] and model.language.embed.num_embeddings == meta["vocab_size"]
    assert np.isfinite([r["test_bound"] for r in log if "test_bound" in r]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_images_and_sizes_are_checked_at_the_boundary(shapes, kind):
    images, captions, lengths = shapes
    m = model(kind)
    for bad, message in ((images * 255, "divide 0..255 images by 255"), (images.double(), "torch.float64"),
                         ((images * 255).byte(), "floats in")):
        with pytest.raises(ValueError, match=message):
            m(bad, captions, lengths)
    with pytest.raises(ValueError, match="z_size must be a whole number"):
        BaselineConfig(kind=kind, **{**TINY, "z_size": -3})


@pytest.mark.parametrize("kind", KINDS)
def test_the_bound_is_float32_under_bf16_autocast(kind):
    """The networks may run in bf16, the bound never does: KL, −log p(x | z) and log q, log p are float32."""
    torch.manual_seed(0)
    model = ConditionalVAE(BaselineConfig(A=16, B=12, C=3, kind=kind, **TINY))
    ids, lengths = SHAPES_VOCAB.encode_batch(["a large red circle is at the top left on a white background ."] * 2)
    x = torch.rand(2, 3, 12, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, ids, lengths)
    assert {t.dtype for t in (out.kl, out.nll, out.log_qz, out.log_pz, out.bound)} == {torch.float32}
