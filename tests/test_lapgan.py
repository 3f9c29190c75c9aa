"""The LAPGAN baseline (minidraw.lapgan): a coarse caption-conditioned GAN at half size, its training
through the trainer, its measures without a bound, and the pyramid that sharpens its pictures."""
import numpy as np
import pytest
import torch

from minidraw import checkpoint, cli, configs, evaluate, train
from minidraw.data.shapes import VOCAB as SHAPES_VOCAB
from minidraw.data.shapes import ShapesCaptions
from minidraw.lapgan import LapGan, LapGanConfig, LapGanPyramid
from minidraw.models import kind_of
from minidraw.sample import sample
from minidraw.sharpen import SharpenConfig, Sharpener, upsample

RUN = ["batch_size=8", "eval_every=0", "eval_examples=16"]
CAPTION = "a red circle is at the top left on a white background ."
SHARPENER_TINY = dict(vocab_size=len(SHAPES_VOCAB), embed_size=4, lang_size=4, g_hidden=6, g_kernel=3,
                      g_last_kernel=3, d_hidden=4)


def tiny_sharpener(C=3, B=32, A=32) -> Sharpener:
    torch.manual_seed(0)
    return Sharpener(SharpenConfig(A=A, B=B, C=C, **SHARPENER_TINY))


@pytest.fixture(scope="module")
def shapes_batch():
    b = ShapesCaptions("train").batch(np.arange(16))
    return b.images, b.captions, b.lengths


def _fails(capsys, argv) -> str:
    assert cli.main(["sample", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


LAPGAN_TINY = dict(vocab_size=len(SHAPES_VOCAB), embed_size=4, lang_size=4, z_size=3, g_hidden=16, d_hidden=8)


def tiny_lapgan(seed=0, **kw):
    torch.manual_seed(seed)
    return LapGan(LapGanConfig(A=32, B=32, C=3, **{**LAPGAN_TINY, **kw}))


def test_lapgan_draws_at_half_size_then_upsamples_into_range(shapes_batch):
    m = tiny_lapgan()
    _, captions, lengths = shapes_batch
    out = m.generate(captions, lengths)
    assert out.coarse.shape == (16, 3, 16, 16) and out.images.shape == (16, 3, 32, 32)
    assert out.images.min() >= 0 and out.images.max() <= 1
    torch.testing.assert_close(out.images, upsample(out.coarse, (32, 32)).clamp(0, 1))
    assert LapGanConfig(A=60, B=59, C=1).coarse == (1, 30, 30)               # ⌈B/2⌉ × ⌈A/2⌉, as d(x) leaves
    torch.manual_seed(0)
    a = m.generate(captions, lengths, temperature=0.0).coarse
    torch.manual_seed(1)
    assert torch.equal(a, m.generate(captions, lengths, temperature=0.0).coarse)   # τ = 0: z = 0
    drawn = sample(m, SHAPES_VOCAB, CAPTION, 3, seed=0)                       # the drawing models' call
    assert drawn.images.shape == (3, 3, 32, 32)
    assert torch.equal(drawn.images, sample(m, SHAPES_VOCAB, CAPTION, 3, seed=0).images)
    with pytest.raises(ValueError, match=r"\(M, 3, 32, 32\)"):
        m(torch.rand(2, 1, 32, 32), captions[:2], lengths[:2])


def test_lapgan_d_learns_the_real_coarse_pictures_then_g_fools_it(shapes_batch):
    """D₀ sees d(x), the real pictures pooled to 16×16: steps on D alone make it right on most real and
    generated pictures; steps on G alone then halve G's loss. Each player's loss reaches only that player."""
    m = tiny_lapgan(r1=0.0)
    for name, player, other in (("d_loss", "D", "G"), ("g_loss", "G", "D")):
        m.zero_grad()
        getattr(m(*shapes_batch), name).mean().backward()
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in getattr(m, other).parameters())
        assert sum(float(p.grad.abs().sum()) for p in getattr(m, player).parameters() if p.grad is not None) > 0
    opt_d = torch.optim.Adam(m.D.parameters(), 3e-3)
    for _ in range(60):
        opt_d.zero_grad(), m(*shapes_batch).d_loss.mean().backward(), opt_d.step()
    torch.manual_seed(1)
    out = m(*shapes_batch)
    assert ((out.d_real > 0).float().mean() + (out.d_fake < 0).float().mean()) / 2 >= 0.75
    g_before = out.g_loss.mean().item()
    opt_g = torch.optim.Adam(m.G.parameters(), 1e-2)
    for _ in range(40):
        opt_g.zero_grad(), m(*shapes_batch).g_loss.mean().backward(), opt_g.step()
    assert m(*shapes_batch).g_loss.mean().item() < 0.5 * g_before


def test_lapgan_trains_resumes_bit_exactly_and_is_measured_without_a_bound(tmp_path, capsys):
    sets = [f"model.{k}={v}" for k, v in LAPGAN_TINY.items() if k != "vocab_size"] + [*RUN, "eval_every=2"]
    load = lambda steps: configs.load_config("lapgan_shapes_small", None, [*sets, f"max_steps={steps}"])  # noqa: E731
    _, straight = train.run(load(4), tmp_path / "a", progress=False)
    train.run(load(2), tmp_path / "b", progress=False)
    _, resumed = train.run(load(4), tmp_path / "b", progress=False)
    steps = lambda log: [r for r in log if "loss" in r]                  # noqa: E731
    assert [r["loss"] for r in steps(resumed)] == [r["loss"] for r in steps(straight)][2:]  # bit for bit
    assert {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"} <= set(steps(straight)[0])
    model, ckpt = checkpoint.load(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["kind"] == "lapgan" and isinstance(model, LapGan)
    splits = evaluate.splits_for(ckpt["train"], model.cfg)
    with pytest.raises(ValueError, match="no likelihood.*bound"):
        evaluate.evaluate(model, splits, ["bound", "ssi"])
    row = evaluate.evaluate(model, splits, evaluate.NO_BOUND_METRICS, evaluate.Sizes(ssi=8, fidelity=8))
    assert 0 <= row["fidelity_seen"] <= 100 and -1 <= row["ssi"] <= 1 and "test_bound" not in row
    ckpt_path = str(tmp_path / "b" / "checkpoint.pt")
    assert cli.main(["evaluate", "--checkpoint", ckpt_path, "--ssi", "8", "--fidelity", "8"]) == 0
    assert "fidelity" in capsys.readouterr().out
    err = _fails(capsys, ["--checkpoint", ckpt_path, "--caption", CAPTION, "--out", str(tmp_path / "g.png")])
    assert "LAPGAN" in err and "minidraw evaluate" in err


def test_the_lapgan_pyramid_sharpens_the_upsampled_coarse_picture(shapes_batch):
    coarse, sharpener = tiny_lapgan(), tiny_sharpener()
    _, captions, lengths = shapes_batch
    pyramid_model = LapGanPyramid(coarse, sharpener)
    torch.manual_seed(3)
    out = pyramid_model.generate(captions, lengths)
    torch.manual_seed(3)
    low = coarse.generate(captions, lengths)
    torch.testing.assert_close(out.coarse, low.coarse)
    torch.testing.assert_close(out.images, low.images)          # the untrained sharpener's G outputs zero
    assert not kind_of(pyramid_model).has_bound
    with pytest.raises(ValueError, match="give both of one data set"):
        LapGanPyramid(coarse, tiny_sharpener(1, 60, 60))
