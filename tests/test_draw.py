import pytest
import torch

from minidraw import checkpoint, optim, train
from minidraw.bound import bernoulli_nll
from minidraw.configs import PRESETS, preset
from minidraw.data.mnist import binarize
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
    assert (out.kl >= 0).all() and torch.isfinite(out.bound).all()
    with pytest.raises(ValueError, match="this model draws"):
        model(torch.rand(2, 1, 9, 12))


def test_prior_is_standard_normal_at_the_first_step_then_learned():
    model = Draw(TINY)
    h = torch.randn(3, TINY.dec_size)
    mu, ls = model.prior_params(h, 0)
    assert (mu == 0).all() and (ls == 0).all()
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


def _by_hand(model, x, eps, learned=True):
    """Two DRAW steps written out one line per equation (DESIGN §2), with the learned prior:
    the canvas, the KL of each step and the bound of ``x`` given the noise ``eps (2, M, z)``."""
    D = torch.distributions
    M, cfg = len(x), model.cfg
    h_dec, c_dec = torch.zeros(M, cfg.dec_size), torch.zeros(M, cfg.dec_size)
    h_enc, c_enc = torch.zeros(M, cfg.enc_size), torch.zeros(M, cfg.enc_size)
    canvas = model.c0.expand_as(x)
    kls = []
    for t in range(2):
        r, _ = model.read(x, x - torch.sigmoid(canvas), h_dec)                 # r_t from x, x̂_t, h^dec_{t−1}
        h_enc, c_enc = model.encoder(torch.cat([r, h_dec], -1), (h_enc, c_enc))
        mu, log_sigma = model.q(h_enc).chunk(2, -1)
        z = mu + log_sigma.exp() * eps[t]
        if t == 0 or not learned:                                               # p(z_1) = N(0, I)
            prior = D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        else:                                                                   # p(z_t | z_<t): tanh(W_p h^dec_{t−1} + b_p)
            W_p, b_p = model.prior.weight, model.prior.bias
            mu_p, log_sigma_p = torch.tanh(h_dec @ W_p.T + b_p).chunk(2, -1)
            prior = D.Normal(mu_p, log_sigma_p.exp())
        kls.append(D.kl_divergence(D.Normal(mu, log_sigma.exp()), prior).sum(-1))
        h_dec, c_dec = model.decoder(z, (h_dec, c_dec))
        canvas = canvas + model.write(h_dec)[0]
    nll = torch.nn.functional.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum((1, 2, 3))
    return canvas, torch.stack(kls, 1), nll + sum(kls)


def test_two_steps_with_the_learned_prior_match_the_equations_by_hand():
    torch.manual_seed(3)
    model = Draw(DrawConfig.from_dict({**TINY.to_dict(), "T": 2}))
    for p in model.prior.parameters():                                         # a prior far from N(0, I)
        torch.nn.init.normal_(p, std=0.5)
    x = torch.rand(5, 3, 9, 12)
    eps = torch.randn(2, 5, TINY.z_size)
    out = model(x, noise=eps)
    canvas, kl, bound = _by_hand(model, x, eps)
    torch.testing.assert_close(out.canvas, canvas)
    torch.testing.assert_close(out.kl, kl)                                     # step 2: KL to the learned prior
    torch.testing.assert_close(out.bound, bound)
    standard = _by_hand(model, x, eps, learned=False)[1]
    assert not torch.allclose(out.kl[:, 1], standard[:, 1], rtol=0.05)   # scoring step 2 against N(0, I) would fail


def test_generation_at_temperature_zero_follows_the_prior_means():
    """z_1 = 0 (the mean of N(0, I)), then z_2 = μ^p_2 = the first half of tanh(W_p h^dec_1 + b_p)."""
    torch.manual_seed(4)
    model = Draw(DrawConfig.from_dict({**TINY.to_dict(), "T": 2}))
    for p in model.prior.parameters():
        torch.nn.init.normal_(p, std=0.5)
    g = model.generate(3, temperature=0.0)
    h, c = torch.zeros(3, TINY.dec_size), torch.zeros(3, TINY.dec_size)
    canvas = model.c0.expand(3, -1, -1, -1)
    with torch.no_grad():
        h, c = model.decoder(torch.zeros(3, TINY.z_size), (h, c))                  # z_1 = 0
        canvas = canvas + model.write(h)[0]
        z2 = torch.tanh(model.prior(h)).chunk(2, -1)[0]                            # z_2 = μ^p_2
        h, c = model.decoder(z2, (h, c))
        canvas = canvas + model.write(h)[0]
    torch.testing.assert_close(g.images, torch.sigmoid(canvas))
    torch.testing.assert_close(g.canvases[-1], g.images)


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
        optim.clip_each(model.parameters(), 10.0)
        opt.step()
    after = torch.stack([model(x).bound.mean() for _ in range(5)]).mean().item()
    assert after < 0.6 * before, (before, after)


def test_attention_parameters_get_gradients():
    model = Draw(TINY)
    model(torch.rand(2, 3, 9, 12)).bound.sum().backward()
    for layer in (model.read, model.write):
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_generate_shapes():
    torch.manual_seed(0)
    g = Draw(TINY).generate(5)
    assert g.images.shape == (5, 3, 9, 12) and g.canvases.shape == (4, 5, 3, 9, 12) and g.write.delta.shape == (5, 4)


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
    checkpoint.save(tmp_path / "m.pt", model, {"note": "hi"})
    loaded, ckpt = checkpoint.load(tmp_path / "m.pt")
    assert ckpt["note"] == "hi" and loaded.cfg == TINY
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "bad.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="not a readable minidraw checkpoint"):
        checkpoint.load(tmp_path / "bad.pt")


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


# ---- the fast forward against the plain one: every step scored as it happens, the equations as written ----
def _plain_forward(model, x, eps):
    """DRAW one step at a time with nothing batched or fused: the filterbanks from exp and a division,
    the read as two glimpses, the write divided by γ on the canvas, the KL, log q(z) and log p(z)
    accumulated step by step. Returns (bound, kl (M, T), log q, log p)."""
    import math
    cfg, M = model.cfg, len(x)
    D = torch.distributions

    def window(linear, h, N):
        gx, gy, log_s2, log_d, log_g = linear(h).unbind(-1)
        delta = (max(cfg.A, cfg.B) - 1) / max(N - 1, 1) * torch.exp(log_d)
        return (cfg.A + 1) / 2 * (gx + 1), (cfg.B + 1) / 2 * (gy + 1), torch.exp(log_s2), delta, torch.exp(log_g)

    def bank(g, delta, s2, N, size):
        mu = g[:, None] + (torch.arange(1, N + 1, dtype=x.dtype) - N / 2 - 0.5) * delta[:, None]
        F = torch.exp(-(torch.arange(1, size + 1, dtype=x.dtype) - mu[..., None]) ** 2 / (2 * s2[:, None, None]))
        return F / F.sum(-1, keepdim=True).clamp_min(1e-8)

    h_dec = c_dec = x.new_zeros(M, cfg.dec_size)
    h_enc = c_enc = x.new_zeros(M, cfg.enc_size)
    canvas, kls, log_q, log_p = model.c0.expand_as(x), [], 0, 0
    for t in range(cfg.T):
        x_hat = x - torch.sigmoid(canvas)
        gx, gy, s2, d, gamma = window(model.read.window, h_dec, cfg.read_N)
        F_X, F_Y = bank(gx, d, s2, cfg.read_N, cfg.A), bank(gy, d, s2, cfg.read_N, cfg.B)
        glimpses = [(F_Y[:, None] @ v @ F_X.transpose(1, 2)[:, None]).flatten(1) for v in (x, x_hat)]
        r = gamma[:, None] * torch.cat(glimpses, 1)
        h_enc, c_enc = model.encoder(torch.cat([r, h_dec], 1), (h_enc, c_enc))
        mu, log_sigma = model.q(h_enc).chunk(2, 1)
        z = mu + log_sigma.exp() * eps[t]
        if t == 0 or model.prior is None:
            mu_p, log_sigma_p = torch.zeros_like(mu), torch.zeros_like(mu)
        else:
            mu_p, log_sigma_p = torch.tanh(model.prior(h_dec)).chunk(2, 1)
        q, p = D.Normal(mu, log_sigma.exp()), D.Normal(mu_p, log_sigma_p.exp())
        kls.append(D.kl_divergence(q, p).sum(1))
        log_q, log_p = log_q + q.log_prob(z).sum(1), log_p + p.log_prob(z).sum(1)
        h_dec, c_dec = model.decoder(z, (h_dec, c_dec))
        gx, gy, s2, d, gamma = window(model.write.window, h_dec, cfg.write_N)
        F_X, F_Y = bank(gx, d, s2, cfg.write_N, cfg.A), bank(gy, d, s2, cfg.write_N, cfg.B)
        patch = model.write.patch(h_dec).view(M, cfg.C, cfg.write_N, cfg.write_N)
        canvas = canvas + (F_Y.transpose(1, 2)[:, None] @ patch @ F_X[:, None]) / gamma[:, None, None, None]
    nll = torch.nn.functional.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum((1, 2, 3))
    assert math.isfinite(nll.sum().item())
    return nll + sum(kls), torch.stack(kls, 1), log_q, log_p


@pytest.mark.parametrize("shape,learned", [((1, 16, 16), True), ((1, 16, 16), False), ((3, 9, 12), True)])
def test_forward_equals_the_plain_step_by_step_form(shape, learned):
    """The batched KL, the lazily computed log q(z) and log p(z), the fast filterbanks and write: the same
    bound, KL per step, log-densities and gradients as the plain form, in float64 with fixed noise."""
    C, B, A = shape
    torch.manual_seed(5)
    cfg = DrawConfig.from_dict({**TINY.to_dict(), "C": C, "B": B, "A": A, "learned_prior": learned})
    model = Draw(cfg).double()
    if learned:
        for p in model.prior.parameters():
            torch.nn.init.normal_(p, std=0.3)
    x = (torch.rand(5, C, B, A, dtype=torch.float64) < 0.4).double()
    eps = torch.randn(cfg.T, 5, cfg.z_size, dtype=torch.float64)
    out = model(x, noise=eps)
    bound, kl, log_q, log_p = _plain_forward(model, x, eps)
    torch.testing.assert_close(out.bound, bound, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out.kl, kl, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.log_qz, log_q, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out.log_pz, log_p, rtol=1e-12, atol=1e-10)
    params = [p for p in model.parameters()]
    fast = torch.autograd.grad(out.bound.sum(), params, allow_unused=True)
    plain = torch.autograd.grad(bound.sum(), params, allow_unused=True)
    for (name, _), a, b in zip(model.named_parameters(), fast, plain):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)


def test_log_densities_are_computed_when_first_read_and_kept():
    torch.manual_seed(6)
    model = Draw(TINY)
    out = model(torch.rand(3, 3, 9, 12))
    assert out.latents is not None and out.latents.mu.shape == (3, TINY.T, TINY.z_size)
    assert "log_qz" not in vars(out) or vars(out)["log_qz"] is None          # nothing computed yet
    log_q = out.log_qz
    assert log_q.shape == (3,) and out.log_qz is log_q                      # computed once, then kept
    torch.testing.assert_close(out.kl, out.latents.kl())
    given = torch.zeros(3)
    out.log_pz = given                                                      # a value given wins
    assert out.log_pz is given
    assert "log_qz=tensor" in repr(out)

