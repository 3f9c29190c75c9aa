import pytest
import torch

from minidraw import train
from minidraw.bound import bernoulli_nll
from minidraw.data.mnist import binarize
from minidraw.configs import PRESETS, preset
from minidraw.draw import Draw, DrawConfig

TINY = DrawConfig(A=12, B=9, C=3, T=4, read_N=3, write_N=4, enc_size=16, dec_size=16, z_size=5)


def test_forward_shapes_nonsquare_colour():
    torch.manual_seed(0)
    model = Draw(TINY)
    x = torch.rand(6, 3, 9, 12)                               # (M, C, B, A): 12 wide, 9 high
    out = model(x, keep_canvases=True)
    assert out.canvas.shape == x.shape and out.canvases.shape == (4, 6, 3, 9, 12)
    assert out.kl.shape == (6, 4) and out.nll.shape == (6,) and out.bound.shape == (6,)
    assert out.read.g_x.shape == (6, 4) and out.write.gamma.shape == (6, 4)
    assert torch.equal(out.canvases[-1], out.canvas)
    torch.testing.assert_close(out.nll, bernoulli_nll(out.canvas, x))
    torch.testing.assert_close(out.bound, out.nll + out.kl.sum(1))
    assert (out.kl >= 0).all() and torch.isfinite(out.bound).all()
    with pytest.raises(ValueError, match="this model draws"):
        model(torch.rand(2, 1, 9, 12))


def test_prior_is_standard_normal_at_the_first_step_then_learned():
    model = Draw(TINY)
    h = torch.randn(3, TINY.dec_size)
    mu, ls = model.prior_params(h, 0)
    assert (mu == 0).all() and (ls == 0).all()
    mu, ls = model.prior_params(h, 1)
    assert mu.abs().max() <= 1 and ls.abs().max() <= 1 and mu.abs().sum() > 0   # tanh(W_p h + b_p)
    fixed = Draw(DrawConfig.from_dict({**TINY.to_dict(), "learned_prior": False}))
    assert all((v == 0).all() for v in fixed.prior_params(h, 5)) and fixed.prior is None


def test_first_step_kl_is_against_standard_normal():
    torch.manual_seed(1)
    model = Draw(TINY)
    x = torch.rand(4, 3, 9, 12)
    torch.manual_seed(2)
    out = model(x)
    # recompute step 1 by hand: h^dec_0 = 0, canvas c_0
    r, _ = model.read(x, x - torch.sigmoid(model.c0).expand_as(x), torch.zeros(4, TINY.dec_size))
    h_enc, _ = model.encoder(torch.cat([r, torch.zeros(4, TINY.dec_size)], -1))
    mu, ls = model.q(h_enc).chunk(2, -1)
    kl1 = torch.distributions.kl_divergence(torch.distributions.Normal(mu, ls.exp()),
                                            torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(out.kl[:, 0], kl1)


def test_initial_canvas_is_learned_and_configurable():
    model = Draw(DrawConfig.from_dict({**TINY.to_dict(), "canvas_init": -10.0}))
    assert torch.sigmoid(model.c0).max() < 1e-4                # a black canvas
    assert model.c0.requires_grad


def test_training_steps_lower_the_bound_markedly(pools):
    torch.manual_seed(0)
    x = torch.from_numpy(binarize(pools.test_images[:32]))
    model = Draw(DrawConfig(T=6, enc_size=64, dec_size=64, z_size=8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = model(x).bound.mean().item()
    for _ in range(60):
        loss = model(x).bound.mean()
        opt.zero_grad()
        loss.backward()
        train.clip_each(model.parameters(), 10.0)
        opt.step()
    after = torch.stack([model(x).bound.mean() for _ in range(5)]).mean().item()
    assert after < 0.6 * before, (before, after)


def test_attention_parameters_get_gradients():
    model = Draw(TINY)
    model(torch.rand(2, 3, 9, 12)).bound.sum().backward()
    for layer in (model.read, model.write):
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_generate_images_in_unit_interval():
    torch.manual_seed(0)
    g = Draw(TINY).generate(5)
    assert g.images.shape == (5, 3, 9, 12) and g.canvases.shape == (4, 5, 3, 9, 12)
    assert g.images.min() >= 0 and g.images.max() <= 1 and g.write.delta.shape == (5, 4)


def test_context_plugs_into_the_decoder():
    cfg = DrawConfig.from_dict({**TINY.to_dict(), "cond_size": 7})
    model = Draw(cfg)
    s = torch.randn(3, 7)
    alpha = torch.softmax(torch.randn(3, 2), -1)
    context = lambda h: (s, alpha)  # noqa: E731
    out = model(torch.rand(3, 3, 9, 12), context)
    assert out.alpha.shape == (3, TINY.T, 2)
    assert model.generate(3, context).alpha.shape == (3, TINY.T, 2)
    with pytest.raises(ValueError, match="give a context"):
        model(torch.rand(3, 3, 9, 12))


def test_iwae_is_no_looser_than_the_bound():
    torch.manual_seed(0)
    model = Draw(TINY)
    x = (torch.rand(4, 3, 9, 12) < 0.3).float()
    elbo = torch.stack([model(x).bound for _ in range(40)]).mean(0)   # E[−L]
    iw = model.iwae(x, K=40)
    assert (iw < elbo).all()


def test_presets():
    paper = preset("draw_mnist_paper")
    assert (paper.T, paper.read_N, paper.write_N, paper.enc_size, paper.z_size) == (64, 2, 5, 256, 100)
    assert preset("draw_mnist_small") is not PRESETS["draw_mnist_small"]
    with pytest.raises(KeyError, match="presets"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown DrawConfig"):
        DrawConfig.from_dict({"Z": 1})


def test_checkpoint_round_trip_and_corrupt_file(tmp_path):
    torch.manual_seed(0)
    model = Draw(TINY)
    train.save(tmp_path / "m.pt", model, {"note": "hi"})
    loaded, ckpt = train.load(tmp_path / "m.pt")
    assert ckpt["note"] == "hi" and loaded.cfg == TINY
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "bad.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="not a readable minidraw checkpoint"):
        train.load(tmp_path / "bad.pt")


def test_images_are_checked_at_the_model_boundary():
    model = Draw(TINY)
    x = torch.rand(2, 3, 9, 12)
    assert torch.isfinite(model(x).bound).all()
    for bad, message in ((x * 255, r"values lie in \[.*\]; .*divide 0..255 images by 255"),
                         ((x * 255).to(torch.uint8), "floats in \\[0, 1\\].*float\\(\\) / 255"),
                         (x.double(), "torch.float64 but the model's weights are torch.float32"),
                         (x - 0.5, "values lie in"),
                         (torch.full_like(x, float("nan")), "values lie in"),
                         (x[:, :1], "this model draws")):
        with pytest.raises(ValueError, match=message):
            model(bad)
    assert torch.isfinite(model.double()(x.double()).bound).all()     # a float64 model takes float64 images


def test_sizes_must_be_positive_whole_numbers():
    for field, value in (("z_size", -3), ("T", 0), ("read_N", 0), ("enc_size", 2.5), ("cond_size", -1)):
        with pytest.raises(ValueError, match=f"{field} must be a whole number of at least"):
            DrawConfig.from_dict({**TINY.to_dict(), field: value})
