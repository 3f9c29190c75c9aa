"""The sharpener: a caption-conditioned LAPGAN level (minidraw.sharpen), its training through the
trainer, and ``minidraw sample --sharpen``."""
import math

import numpy as np
import pytest
import torch

from minidraw import checkpoint, cli, configs, train
from minidraw.checkpoint import load, save
from minidraw.configs import preset
from minidraw.data.shapes import ShapesCaptions
from minidraw.data.shapes_grammar import VOCAB as SHAPES_VOCAB
from minidraw.models import build
from minidraw.sharpen import SharpenConfig, Sharpener, downsample, low_pass, pyramid, reconstruct, upsample
from minidraw.text import Vocabulary

TINY = dict(vocab_size=len(SHAPES_VOCAB), embed_size=4, lang_size=4, g_hidden=6, g_kernel=3, g_last_kernel=3,
            d_hidden=4)
TINY_SETS = [f"model.{k}={v}" for k, v in TINY.items() if k != "vocab_size"]
RUN = ["batch_size=8", "eval_every=0", "eval_examples=16"]


def tiny(C=3, B=10, A=12, seed=0, **kw) -> Sharpener:
    torch.manual_seed(seed)
    return Sharpener(SharpenConfig(A=A, B=B, C=C, **{**TINY, **kw}))


@pytest.fixture(scope="module")
def shapes_batch():
    b = ShapesCaptions("train").batch(np.arange(16))
    return b.images, b.captions, b.lengths


def test_the_pyramid_round_trip_is_exact():
    torch.manual_seed(0)
    for shape in ((3, 2, 32, 32), (2, 1, 60, 60), (2, 3, 9, 13)):      # odd sizes too
        x = torch.rand(*shape, dtype=torch.float64)
        levels = pyramid(x, 3)
        assert [tuple(h.shape[-2:]) for h in levels[:2]] == [shape[-2:], tuple((s + 1) // 2 for s in shape[-2:])]
        torch.testing.assert_close(reconstruct(levels), x, rtol=0, atol=1e-12)
        torch.testing.assert_close(low_pass(x) + levels[0], x, rtol=0, atol=1e-12)   # x = l + h
    x = torch.rand(1, 1, 4, 6, dtype=torch.float64)
    naive = torch.tensor([[x[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean() for j in range(3)] for i in range(2)])
    torch.testing.assert_close(downsample(x)[0, 0], naive)              # d: 2×2 means
    const = torch.full((1, 1, 3, 5), 0.3, dtype=torch.float64)
    torch.testing.assert_close(upsample(const, (6, 10)), torch.full((1, 1, 6, 10), 0.3, dtype=torch.float64))


def test_shapes_and_range(shapes_batch):
    images, captions, lengths = shapes_batch
    m = tiny(3, 32, 32)
    out = m(images, captions, lengths)
    for v in (out.loss, out.d_loss, out.g_loss, out.d_real, out.d_fake):
        assert v.shape == (16,) and torch.isfinite(v).all()
    torch.testing.assert_close(out.loss, out.d_loss + out.g_loss)
    sharp = m.sharpen(images * 0.5, captions, lengths)
    assert sharp.shape == images.shape and sharp.min() >= 0 and sharp.max() <= 1
    with pytest.raises(ValueError, match=r"\(M, 3, 32, 32\)"):
        m.sharpen(images[:, :1], captions, lengths)


def test_a_generator_that_outputs_zero_leaves_the_images_unchanged(shapes_batch):
    images, captions, lengths = shapes_batch
    m = tiny(3, 32, 32)
    torch.nn.init.normal_(m.G.net[-1].weight)
    assert not torch.equal(m.sharpen(low_pass(images), captions, lengths), low_pass(images).clamp(0, 1))
    last = m.G.net[-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    blurry = low_pass(images)
    assert torch.equal(m.sharpen(blurry, captions, lengths), blurry.clamp(0, 1))


def test_each_players_loss_reaches_only_that_player(shapes_batch):
    m = tiny(3, 32, 32)
    grads = {}
    for name in ("d_loss", "g_loss"):
        m.zero_grad()
        getattr(m(*shapes_batch), name).mean().backward()
        grads[name] = {part: sum(float(p.grad.abs().sum()) for p in getattr(m, part).parameters() if p.grad is not None)
                       for part in ("G", "D")}
    assert grads["d_loss"]["G"] == 0 and grads["d_loss"]["D"] > 0
    assert grads["g_loss"]["D"] == 0 and grads["g_loss"]["G"] > 0


def test_d_learns_to_tell_then_g_learns_to_fool(shapes_batch):
    """Steps on D alone move its accuracy well away from 50 % (G starts at ĥ = 0, so D must tell
    blurry from sharp); then steps on G alone bring G's loss (−log σ(D(x̃))) down: the two
    gradients do what the objective says."""
    torch.manual_seed(0)
    m = tiny(3, 32, 32, r1=0.0, d_hidden=8)
    m.D.caption.project.weight.data.zero_()                            # at initialisation D's loss is ≈ 2 log 2:
    m.D.out.weight.data.zero_(), m.D.out.bias.data.zero_()             # with a zero last layer, exactly
    torch.testing.assert_close(m(*shapes_batch).d_loss, torch.full((16,), 2 * math.log(2)))
    opt_d = torch.optim.Adam(m.D.parameters(), 3e-3)
    for _ in range(100):
        opt_d.zero_grad(), m(*shapes_batch).d_loss.mean().backward(), opt_d.step()
    torch.manual_seed(1)
    out = m(*shapes_batch)
    accuracy = ((out.d_real > 0).float().mean() + (out.d_fake < 0).float().mean()) / 2   # 50 %: D guesses
    assert accuracy >= 0.75
    g_before = out.g_loss.mean().item()
    opt_g = torch.optim.Adam(m.G.parameters(), 1e-2)
    for _ in range(40):
        opt_g.zero_grad(), m(*shapes_batch).g_loss.mean().backward(), opt_g.step()
    assert m(*shapes_batch).g_loss.mean().item() < 0.5 * g_before


def test_the_r1_penalty_is_half_gamma_times_the_squared_input_gradient_on_real_images(shapes_batch):
    images, captions, lengths = shapes_batch
    with_r1, without = tiny(3, 32, 32, r1=3.0), tiny(3, 32, 32, r1=0.0)
    without.load_state_dict(with_r1.state_dict())
    torch.manual_seed(5)
    penalised = with_r1(images, captions, lengths).d_loss
    torch.manual_seed(5)
    plain = without(images, captions, lengths).d_loss
    x = images.clone().requires_grad_(True)
    grad, = torch.autograd.grad(with_r1.D(x, low_pass(images), captions, lengths).sum(), x)
    torch.testing.assert_close(penalised - plain, 1.5 * grad.pow(2).flatten(1).sum(1), rtol=1e-4, atol=1e-6)
    with torch.no_grad():                                  # evaluation: no penalty, no double backward
        torch.manual_seed(5)
        torch.testing.assert_close(with_r1(images, captions, lengths).d_loss, plain)
    with pytest.raises(ValueError, match="r1"):
        SharpenConfig(r1=-1.0)


def test_the_l1_term_is_lambda_times_the_mean_distance_and_reaches_only_g(shapes_batch):
    """``l1=λ``: G's loss gains λ·mean|x̃ − x| (x̃ recomputed by hand from the same noise), D's loss is
    unchanged, the term's gradient reaches G alone, and a bad λ is one clear error."""
    images, captions, lengths = shapes_batch
    with_l1, without = tiny(3, 32, 32, l1=7.0), tiny(3, 32, 32)
    torch.nn.init.normal_(with_l1.G.net[-1].weight, std=0.1)            # a G whose residual is not zero
    without.load_state_dict(with_l1.state_dict())
    torch.manual_seed(5)
    out = with_l1(images, captions, lengths)
    torch.manual_seed(5)
    plain = without(images, captions, lengths)
    torch.manual_seed(5)
    noise = with_l1.noise(images)
    blurry = low_pass(images)
    x_tilde = blurry + with_l1.G(blurry, captions, lengths, noise)
    distance = (x_tilde - images).abs().mean((1, 2, 3))                # (M,)
    torch.testing.assert_close(out.l1, distance.detach())
    torch.testing.assert_close(out.g_loss - plain.g_loss, 7.0 * distance, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.d_loss, plain.d_loss)
    assert plain.l1 is None and "l1" in out.metrics() and "l1" not in plain.metrics()
    with_l1.zero_grad()
    (out.g_loss - plain.g_loss.detach()).mean().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in with_l1.D.parameters())
    assert sum(float(p.grad.abs().sum()) for p in with_l1.G.parameters() if p.grad is not None) > 0
    with pytest.raises(ValueError, match="l1"):
        SharpenConfig(l1=-0.5)


def test_it_trains_through_the_trainer_and_resumes_bit_exactly(tmp_path):
    sets = [*TINY_SETS, *RUN, "eval_every=2"]
    _, straight = train.run(configs.load_config("sharpen_shapes_small", None, [*sets, "max_steps=4"]),
                            tmp_path / "a", progress=False)
    train.run(configs.load_config("sharpen_shapes_small", None, [*sets, "max_steps=2"]), tmp_path / "b", progress=False)
    _, resumed = train.run(configs.load_config("sharpen_shapes_small", None, [*sets, "max_steps=4"]),
                           tmp_path / "b", progress=False)
    steps = lambda log: [r for r in log if "loss" in r]                  # noqa: E731
    assert [r["step"] for r in steps(resumed)] == [3, 4]
    assert [r["loss"] for r in steps(resumed)] == [r["loss"] for r in steps(straight)][2:]  # bit for bit
    assert {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"} <= set(steps(straight)[0])
    tests = [r for r in straight if "test_d_acc_real" in r]
    assert [r["step"] for r in tests] == [2, 4] and not any("test_bound" in r for r in straight)
    a, _ = checkpoint.load(tmp_path / "a" / "checkpoint.pt")
    b, ckpt = checkpoint.load(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["kind"] == "sharpener" and isinstance(b, Sharpener)
    assert Vocabulary.from_dict(ckpt["vocab"]) == SHAPES_VOCAB
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert (tmp_path / "b" / "metrics.png").exists()


def test_the_withdrawn_blur_settings_load_as_pyramid_pairs_and_are_refused_otherwise(tmp_path):
    """``blur`` and ``drawer`` left the package: a file that stored the value still built (``blur="pyramid"``,
    ``drawer=""``, as every shipped sharpener did) loads without them; one that stored another is refused by
    name, from the dict and from a checkpoint file alike."""
    old = {**SharpenConfig(**TINY).to_dict(), "blur": "pyramid", "drawer": ""}
    assert SharpenConfig.from_dict(old) == SharpenConfig(**TINY)
    assert "blur" not in SharpenConfig().to_dict() and "drawer" not in SharpenConfig().to_dict()
    with pytest.raises(ValueError, match="blur='reconstruction'.*removed"):
        SharpenConfig.from_dict({**old, "blur": "reconstruction", "drawer": "aligndraw-shapes"})
    with pytest.raises(ValueError, match="drawer='x.pt'.*removed"):
        SharpenConfig.from_dict({**old, "drawer": "x.pt"})
    with pytest.raises(TypeError):
        SharpenConfig(blur="pyramid")
    model = tiny(B=32, A=32)
    save(tmp_path / "old.pt", model)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=True)
    for blur, loads in (("pyramid", True), ("reconstruction", False)):
        torch.save({**ckpt, "config": {**ckpt["config"], "blur": blur, "drawer": "" if loads else "d.pt"}},
                   tmp_path / f"{blur}.pt")
        if loads:
            back, _ = load(tmp_path / f"{blur}.pt")
            assert back.cfg == model.cfg
        else:
            with pytest.raises(Exception, match="blur='reconstruction'"):
                load(tmp_path / f"{blur}.pt")


def test_the_coco_preset_trains_on_the_coco_fixture(tmp_path):
    from minidraw.data.coco_fixture import make_tiny_coco
    from minidraw.data.coco_prepare import prepare_coco
    meta = prepare_coco(make_tiny_coco(tmp_path / "raw"), tmp_path / "coco", min_count=1, progress=False)
    assert preset("sharpen_coco_paper").g_kernel == 7 and preset("sharpen_coco_paper").g_hidden == 128
    cfg = configs.load_config("sharpen_coco_paper", None, [*TINY_SETS, *RUN, "max_steps=2", f"data={tmp_path / 'coco'}"])
    assert (cfg.optimizer, cfg.lr) == ("adam", 2e-4)
    model, log = train.run(cfg, tmp_path / "run", progress=False)
    assert model.cfg.vocab_size == meta["vocab_size"]
    assert np.isfinite([r["loss"] for r in log if "loss" in r]).all()


# ---- minidraw sample --sharpen ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("sharpen")
    torch.manual_seed(0)
    drawer = build(preset("aligndraw_shapes_small", T=2, enc_size=8, dec_size=8, z_size=2, align_size=4,
                          lang_size=4, embed_size=4))
    checkpoint.save(d / "draw.pt", drawer, {"train": {"preset": "aligndraw_shapes_small"}, "vocab": SHAPES_VOCAB.to_dict()})
    train.run(configs.load_config("sharpen_shapes_small", None, [*TINY_SETS, *RUN, "max_steps=1"]), d / "sh",
              progress=False)
    wrong = tiny(1, 60, 60)
    checkpoint.save(d / "grey.pt", wrong, {"vocab": SHAPES_VOCAB.to_dict()})
    return {"draw": d / "draw.pt", "sharpener": d / "sh" / "checkpoint.pt", "grey": d / "grey.pt"}


CAPTION = "a red circle is at the top left on a white background ."


def _fails(capsys, argv) -> str:
    assert cli.main(["sample", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_sample_sharpens_and_keeps_the_blurry_grid(checkpoints, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli.main(["sample", "--checkpoint", str(checkpoints["draw"]), "--caption", CAPTION, "--n", "2",
                     "--out", str(out), "--sharpen", str(checkpoints["sharpener"]), "--keep-blurry"]) == 0
    assert out.exists() and (tmp_path / "grid_blurry.png").exists()
    assert "sharpened" in capsys.readouterr().out


def test_a_sharpener_and_a_drawing_model_in_each_others_place_get_one_clear_line(checkpoints, tmp_path, capsys):
    out = str(tmp_path / "g.png")
    err = _fails(capsys, ["--checkpoint", str(checkpoints["sharpener"]), "--caption", CAPTION, "--out", out])
    assert "is a sharpener" in err and "--sharpen" in err
    err = _fails(capsys, ["--checkpoint", str(checkpoints["draw"]), "--caption", CAPTION, "--out", out,
                          "--sharpen", str(checkpoints["draw"])])
    assert "needs a sharpener checkpoint" in err
    err = _fails(capsys, ["--checkpoint", str(checkpoints["draw"]), "--caption", CAPTION, "--out", out,
                          "--sharpen", str(checkpoints["grey"])])
    assert "1×60×60" in err and "3×32×32" in err
    assert "--keep-blurry goes with --sharpen" in _fails(capsys, ["--checkpoint", str(checkpoints["draw"]),
                                                                  "--caption", CAPTION, "--out", out, "--keep-blurry"])


def test_the_python_api_sharpens_with_one_caption_or_one_per_image(checkpoints):
    from minidraw.sample import sharpen
    sharpener, _ = checkpoint.load(checkpoints["sharpener"])
    images = torch.rand(3, 3, 32, 32)
    one = sharpen(sharpener, SHAPES_VOCAB, images, CAPTION, seed=1)
    assert one.shape == images.shape and torch.equal(one, sharpen(sharpener, SHAPES_VOCAB, images, [CAPTION] * 3, seed=1))
    with pytest.raises(ValueError, match="3 images but 2 captions"):
        sharpen(sharpener, SHAPES_VOCAB, images, [CAPTION] * 2)


# ---- the bound, SSI and fidelity after sharpening ---------------------------------------------------
def test_after_sharpening_with_a_zero_generator_the_bound_is_the_bound(checkpoints):
    """x̃ = σ(c_T) when G outputs 0: the "after sharpening" column must then equal −L (canvas logits
    within ±10); a real generator changes it."""
    from minidraw.evaluate import Sizes, evaluate
    from minidraw.measures import bound_values, sharpened_bound_values
    model, _ = checkpoint.load(checkpoints["draw"])
    sharpener = tiny(3, 32, 32)
    assert not sharpener.G.net[-1].weight.any() and not sharpener.G.net[-1].bias.any()   # G starts at ĥ = 0
    data = ShapesCaptions("test")
    b = data.batch(np.arange(6))
    batches = [(b.images, b.captions, b.lengths)]
    plain = bound_values(model, batches, seed=3)
    assert model(*batches[0]).canvas.abs().max() < 10
    torch.testing.assert_close(sharpened_bound_values(model, sharpener, batches, seed=3), plain, rtol=1e-4, atol=1e-3)
    moved = tiny(3, 32, 32, seed=1)
    torch.nn.init.normal_(moved.G.net[-1].weight, std=0.3)
    assert not torch.allclose(sharpened_bound_values(model, moved, batches, seed=3), plain, atol=1.0)
    row = evaluate(model, {"train": data, "test": data}, ["bound", "ssi"], Sizes(bound=6, ssi=4), sharpener=sharpener)
    assert abs(row["test_bound_sharp"] - row["test_bound"]) < 1e-2 and abs(row["ssi_sharp"] - row["ssi"]) < 1e-6
