"""Ours, beside the paper: word-valued alignment, the what/where generator, and the training-only objective."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from minidraw import configs, optim, train
from minidraw.checkpoint import load, save
from minidraw.compose import ComposeDraw, ComposeDrawConfig, CompositionObjective
from minidraw.configs import load_config, preset
from minidraw.data.mnist_captions import VOCAB
from minidraw.data.shapes import VOCAB as SHAPES_VOCAB
from minidraw.data.shapes import ShapesCaptions


def run(m, images, captions, lengths, seed=1, **kw):
    torch.manual_seed(seed)
    return m(images, captions, lengths, **kw)


def _what_where(**kw):
    cfg = ComposeDrawConfig(A=60, B=60, C=1, T=4, read_N=3, write_N=3, enc_size=16, dec_size=12, z_size=6,
                            vocab_size=len(VOCAB), embed_size=8, lang_size=8, align_size=8,
                            content_first=VOCAB.encode("0")[0], content_last=VOCAB.encode("9")[0], **kw)
    torch.manual_seed(0)
    return ComposeDraw(cfg)


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


def test_word_valued_alignment_averages_the_word_embeddings_with_the_same_weights():
    """s_t = Σ_j α_j^t E y_j, with α^t scored against the BiLSTM states as in the paper (a naive sum); the paper's
    alignDRAW with the same weights gives the same α. Padding changes nothing."""
    from minidraw.aligndraw import CaptionDraw
    torch.manual_seed(0)
    cfg = preset("compose_mnist_small", T=3, enc_size=8, dec_size=8, z_size=2, what_where=False)
    assert cfg.cond_size == cfg.embed_size
    model = ComposeDraw(cfg).eval()
    ids, lengths = VOCAB.encode_batch(["the digit 3 is at the top left of the image .", "the digit 7 ."])
    h = torch.randn(2, cfg.dec_size)
    s, alpha = model.context(ids, lengths)(h)
    h_lang, mask = model.language(ids, lengths)
    E = model.language.embed(ids)                                                   # (M, L, e)
    by_hand = torch.einsum("ml,mld->md", alpha, E)                                  # Σ_j α_j E y_j
    assert torch.allclose(s, by_hand, atol=1e-6)
    ids20, lengths20 = VOCAB.encode_batch(["the digit 3 is at the top left of the image .", "the digit 7 ."],
                                          max_len=20)
    s20, alpha20 = model.context(ids20, lengths20)(h)
    assert torch.allclose(s20, s, atol=1e-6) and torch.allclose(alpha20[:, :ids.shape[1]], alpha, atol=1e-6)
    paper = CaptionDraw(preset("aligndraw_mnist_small", T=3, enc_size=8, dec_size=8, z_size=2,
                               align_size=cfg.align_size)).eval()
    paper.language.load_state_dict(model.language.state_dict())
    paper.align.load_state_dict(model.align.state_dict())
    s_paper, alpha_paper = paper.context(ids, lengths)(h)
    assert torch.allclose(alpha_paper, alpha, atol=1e-6)
    assert torch.allclose(s_paper, torch.einsum("ml,mld->md", alpha, h_lang), atol=1e-6)   # Σ_j α_j h^lang_j
    with pytest.raises(ValueError, match="variant='align'"):
        preset("compose_mnist_small", variant="noalign")




def test_what_adversary_trains_the_guess_on_the_truth_and_the_what_path_towards_the_mean():
    """``what_adversary``: aux = λ Σ_t (BCE(f(sg h^what_t), y) + BCE(f_sg(h^what_t), ȳ)) over the caption's words
    other than padding and digits, against naive loops over captions, steps and words: f's gradient is that of
    its own cross-entropy alone, h^what's that of the held f's distance from the batch frequencies ȳ alone;
    ``nats`` is what f gains over ȳ."""
    lam = 3.0
    model = _what_where()
    adversary, cfg = CompositionObjective(model, what_adversary=lam).adversary, model.cfg
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
    ids, lengths = VOCAB.encode_batch(["the digit 3 is at the top of the digit 7 .",
                                       "the digit 5 is at the bottom right of the image ."])
    images = (torch.rand(2, 1, 60, 60, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    noise = torch.randn(cfg.T, 2, cfg.z_size, generator=torch.Generator().manual_seed(2))
    return images, ids, lengths, noise


def test_the_objective_adds_the_adversary_to_the_gradient_and_never_to_the_bound():
    """The objective's bound is the model's (same weights, same noise), its adversary's term is extra, one training
    step returns the bound, logs what the adversary reads and moves the adversary's weights; the model itself holds
    no adversary, so what is saved has none; the settings are checked."""
    model = _what_where()
    objective = CompositionObjective(model, what_adversary=2.0)
    assert not any("adversary" in k for k in model.state_dict())
    images, ids, lengths, noise = _two_scenes(model.cfg)
    torch.manual_seed(4)
    out = objective(images, ids, lengths)
    torch.manual_seed(4)
    torch.testing.assert_close(out.bound, model(images, ids, lengths).bound)
    assert out.aux.shape == (2,) and (out.aux > 0).all() and out.adversary_nats is not None
    h = model(images, ids, lengths, noise=noise, keep_states=True).states
    assert h.shape == (2, model.cfg.T, model.cfg.dec_size)
    cfg = configs.TrainConfig(lr=1e-2, cpu_bf16=False)
    opt = torch.optim.Adam(objective.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in objective.adversary.parameters()]
    logged: dict = {}
    torch.manual_seed(3)
    loss = train.train_step(objective, opt, (images, ids, lengths), cfg, 1, metrics=logged)
    assert "adversary_nats" in logged
    assert all(not torch.equal(a, b) for a, b in zip(before, objective.adversary.parameters()))
    assert set(objective.terms_state()) == {f"adversary.{k}" for k in objective.adversary.state_dict()}
    with pytest.raises(ValueError, match="what_where=true"):
        CompositionObjective(_what_where(what_where=False), what_adversary=1.0)
    with pytest.raises(ValueError, match="λ >= 0"):
        CompositionObjective(model, what_adversary=-1.0)
    assert loss > 0


def test_where_kl_weighs_z_where_in_training_only():
    """``where_kl = β``: aux = (β − 1) Σ_t KL(q(z^where_t) || p(z^where_t)) over the where LSTM's half of z_t (the
    closed form of torch.distributions), so the objective is NLL + β KL^where + KL^what; the bound is the model's
    own sample, and with the adversary too the two terms add."""
    from torch.distributions import Normal, kl_divergence
    beta = 3.0
    model = _what_where()
    images, ids, lengths, noise = _two_scenes(model.cfg)
    torch.manual_seed(5)
    out = CompositionObjective(model, where_kl=beta)(images, ids, lengths)
    torch.manual_seed(5)
    plain = model(images, ids, lengths)
    torch.testing.assert_close(out.bound, plain.bound)
    l, half = plain.latents, model.cfg.z_size // 2                              # z^where: the first half of z_t
    naive = kl_divergence(Normal(l.mu[..., :half], l.logsigma[..., :half].exp()),
                          Normal(l.mu_p[..., :half], l.logsigma_p[..., :half].exp())).sum((1, 2))   # (M,)
    torch.testing.assert_close(out.aux, (beta - 1) * naive)
    assert (naive > 0).all()
    both, alone = CompositionObjective(model, 2.0, beta), CompositionObjective(model, 2.0)
    alone.adversary.load_state_dict(both.adversary.state_dict())
    torch.manual_seed(5)
    aux_both = both(images, ids, lengths).aux
    torch.manual_seed(5)
    torch.testing.assert_close(aux_both, alone(images, ids, lengths).aux + (beta - 1) * naive)
    with pytest.raises(ValueError, match="β >= 0"):
        CompositionObjective(model, where_kl=-1.0)


def test_a_run_with_the_objective_saves_the_model_alone_and_resumes_its_terms(tmp_path, monkeypatch):
    """Training with what_adversary and where_kl: the checkpoint's model has no adversary and its configuration no
    training-only setting; the adversary's weights ride beside it ("objective"); a resumed run goes on from them,
    and init= a checkpoint with the same adversary copies it too."""
    monkeypatch.setenv("MINIDRAW_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    cfg = load_config("compose_mnist_small", None, ["max_steps=2", "eval_every=0", "eval_examples=8",
                                                          "batch_size=4", "what_adversary=3", "where_kl=2",
                                                          "model.T=2", "model.enc_size=8", "model.dec_size=8",
                                                          "model.z_size=4", "checkpoint_every=1"])
    model, log = train.run(cfg, tmp_path / "run", progress=False)
    assert "adversary_nats" in log[0]
    saved, ckpt = load(tmp_path / "run" / "checkpoint.pt")
    assert type(saved) is ComposeDraw and not any("adversary" in k for k in ckpt["model"])
    assert "what_adversary" not in ckpt["config"] and "where_kl" not in ckpt["config"]
    assert set(ckpt["objective"]) and all(k.startswith("adversary.") for k in ckpt["objective"])
    assert ckpt["train"]["what_adversary"] == 3.0
    cfg.max_steps = 3
    again, log2 = train.run(cfg, tmp_path / "run", progress=False)
    assert [r["step"] for r in log2 if "bound" in r] == [3]
    objective = CompositionObjective(type(saved)(saved.cfg), what_adversary=3.0)
    train.init_weights(objective.model, str(tmp_path / "run" / "checkpoint.pt"), objective)
    ckpt3 = load(tmp_path / "run" / "checkpoint.pt")[1]
    for k, v in ckpt3["objective"].items():
        assert torch.equal(objective.terms_state()[k], v), k
    with pytest.raises(ValueError, match="what/where generator"):
        train.run(load_config("aligndraw_mnist_small", None, ["what_adversary=1", "max_steps=1"]), None)


def test_terms_from_switches_the_terms_on_mid_run_within_one_schedule(tmp_path, monkeypatch):
    """``terms_from = k``: steps 1..k train −L alone (no adversary term, no reading of the layout, the adversary's
    weights untouched); from step k + 1 both terms join the same run, its optimiser and its schedule, also when
    the run was stopped before the switch and resumed with more steps."""
    monkeypatch.setenv("MINIDRAW_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    sets = ["max_steps=4", "eval_every=0", "eval_examples=8", "batch_size=4", "what_adversary=3", "where_kl=2",
            "model.T=2", "model.enc_size=8", "model.dec_size=8", "model.z_size=4", "checkpoint_every=1"]
    cfg = load_config("compose_mnist_small", None, [*sets, "max_steps=2", "terms_from=2"])
    train.run(cfg, tmp_path / "run", progress=False)                   # two steps, both before the switch
    ckpt = load(tmp_path / "run" / "checkpoint.pt")[1]
    assert ckpt["objective"] and all(k.startswith("adversary.") for k in ckpt["objective"])
    cfg.max_steps = 4
    _, log = train.run(cfg, tmp_path / "run", progress=False)          # resumed: steps 3 and 4, after it
    steps = [r for r in log if "bound" in r]
    assert [r["step"] for r in steps] == [3, 4] and all("adversary_nats" in r for r in steps)
    after = load(tmp_path / "run" / "checkpoint.pt")[1]["objective"]
    assert any(not torch.equal(after[k], ckpt["objective"][k]) for k in after)
    whole = load_config("compose_mnist_small", None, [*sets, "terms_from=2"])
    _, log = train.run(whole, tmp_path / "whole", progress=False)      # one run across the switch
    assert ["adversary_nats" in r for r in log if "bound" in r] == [False, False, True, True]
    model = _what_where()
    objective = CompositionObjective(model, what_adversary=2.0, where_kl=3.0)
    images, ids, lengths, _ = _two_scenes(model.cfg)
    objective.active = False
    torch.manual_seed(4)
    off = objective(images, ids, lengths)
    torch.manual_seed(4)
    torch.testing.assert_close(off.bound, model(images, ids, lengths).bound)
    assert off.aux is None and off.adversary_nats is None
    before = [p.detach().clone() for p in objective.adversary.parameters()]
    opt = torch.optim.Adam(objective.parameters(), lr=1e-2)
    train.train_step(objective, opt, (images, ids, lengths), configs.TrainConfig(lr=1e-2), 1)
    assert all(torch.equal(a, b) for a, b in zip(before, objective.adversary.parameters()))   # untouched while off
    with pytest.raises(ValueError, match="terms_from must be 0 or more"):
        configs.TrainConfig(terms_from=-1)


def test_checkpoints_of_earlier_releases_load_as_compose_models(tmp_path):
    """A file from before the split — one configuration with the extension's switches and the training-only terms,
    the adversary's weights in the model — loads as a ComposeDraw with the same weights and draws the same; its
    training-only terms move to the training settings and the adversary to "objective"; a file that holds a switch
    that never shipped is refused by name."""
    model = _what_where()
    old_config = {**model.cfg.to_dict(), "align_values": "words", "what_adversary": 12.0, "where_kl": 2.0,
                  "sentence_pretrain_steps": 500}
    adversary = CompositionObjective(model, what_adversary=12.0).adversary
    state = {**model.state_dict(), **{f"adversary.{k}": v for k, v in adversary.state_dict().items()}}
    train_settings = {"preset": "aligndraw_mnist_small", "model": {"align_values": "words", "what_where": True,
                                                                   "what_adversary": 12.0}}
    torch.save({"kind": "caption", "config": old_config, "model": state, "train": train_settings}, tmp_path / "old.pt")
    back, ckpt = load(tmp_path / "old.pt")
    assert type(back) is ComposeDraw and back.cfg == model.cfg
    assert ckpt["train"]["preset"] == "compose_mnist_small" and ckpt["train"]["what_adversary"] == 12.0
    assert ckpt["train"]["where_kl"] == 2.0 and "align_values" not in ckpt["train"]["model"]
    assert set(ckpt["objective"]) == {f"adversary.{k}" for k in adversary.state_dict()}
    images, ids, lengths, noise = _two_scenes(model.cfg)
    torch.testing.assert_close(back(images, ids, lengths, noise=noise).bound, model(images, ids, lengths, noise=noise).bound)
    torch.save({"kind": "caption", "config": {**old_config, "what_reset": True}, "model": state},
               tmp_path / "withdrawn.pt")                                    # a switch that never shipped
    with pytest.raises(Exception, match="what_reset.*another minidraw release"):
        load(tmp_path / "withdrawn.pt")


def test_a_pair_of_temperatures_scales_the_two_halves_of_z():
    """generate with (τ^where, τ^what): at (0, 0) the drawing is the one temperature 0 gives; a pair needs what/where."""
    model = _what_where().eval()
    ids, lengths = VOCAB.encode_batch(["the digit 3 is at the top of the digit 7 ."])
    torch.manual_seed(0)
    a = model.generate(ids, lengths, temperature=(0.0, 0.0)).images
    torch.manual_seed(1)
    b = model.generate(ids, lengths, temperature=0.0).images
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="pair of temperatures"):
        _what_where(what_where=False).generate(ids, lengths, temperature=(1.0, 0.0))


def test_what_where_trains_and_checks_its_settings(batch):
    with pytest.raises(ValueError, match="content words"):
        ComposeDrawConfig(vocab_size=23)
    cfg = ComposeDrawConfig(A=16, B=12, C=3, T=3, read_N=2, write_N=2, enc_size=16, dec_size=12, z_size=4,
                            vocab_size=len(SHAPES_VOCAB), embed_size=8, lang_size=8, align_size=8,
                            content_first=15, content_last=28)
    torch.manual_seed(0)
    model = ComposeDraw(cfg)
    images, captions, lengths = batch
    before = torch.stack([run(model, images, captions, lengths, seed=s).bound.mean() for s in range(3)]).mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(images, captions, lengths).bound.mean()
        opt.zero_grad()
        loss.backward()
        optim.clip_each(model.parameters(), 10.0)
        opt.step()
    after = torch.stack([run(model, images, captions, lengths, seed=s).bound.mean() for s in range(3)]).mean()
    assert after < 0.85 * before, (before.item(), after.item())
    assert model.generate(batch[1], batch[2]).images.shape == batch[0].shape


def test_a_checkpoint_missing_a_weight_names_it(tmp_path):
    model = _what_where()
    state = {k: v for k, v in model.state_dict().items() if k != "draw.c0"}
    torch.save({"kind": "compose", "config": model.cfg.to_dict(), "model": state}, tmp_path / "m.pt")
    with pytest.raises(Exception, match="weights missing draw.c0"):
        load(tmp_path / "m.pt")
