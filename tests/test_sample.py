"""``minidraw sample``: vocabulary, caption checks, reproducible drawing, and the command line."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from minidraw import checkpoint, cli, configs, train
from minidraw.cli.sample import add_arguments, run
from minidraw.configs import preset
from minidraw.data import mnist_captions, shapes
from minidraw.data.shapes_grammar import VOCAB as SHAPES_VOCAB
from minidraw.draw import Draw, DrawConfig
from minidraw.models import build
from minidraw.sample import encode_captions, max_words_for, sample, vocabulary_for
from minidraw.text import EmptyCaptionError, UnknownWordError, Vocabulary


def main(argv: list[str]) -> int:
    """``minidraw sample ARGV``, through the one command line."""
    return cli.main(["sample", *argv])


CAPTION = "a large red circle is at the top left on a white background ."
TINY = dict(T=3, enc_size=16, dec_size=16, z_size=4, align_size=8, lang_size=8, embed_size=8)


@pytest.fixture(scope="module")
def shapes_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build(preset("aligndraw_shapes_small", **TINY))


@pytest.fixture(scope="module")
def draw_model() -> Draw:
    torch.manual_seed(0)
    return Draw(DrawConfig(A=12, B=10, T=3, read_N=2, write_N=3, enc_size=16, dec_size=16, z_size=4))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, shapes_model, draw_model) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    checkpoint.save(d / "shapes.pt", shapes_model, {"train": {"preset": "aligndraw_shapes_small"}})
    checkpoint.save(d / "draw.pt", draw_model, {"train": {"preset": "draw_mnist_small"}})
    return {"shapes": d / "shapes.pt", "draw": d / "draw.pt"}


def fails(capsys, argv: list[str]) -> str:
    """Run ``main(argv)``, expect exit status 2, and return stderr (one line, no traceback)."""
    try:
        code = main(argv)
    except SystemExit as e:          # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


# ---- vocabulary and captions -----------------------------------------------------------
def test_vocabulary_from_checkpoint_preset_or_size(shapes_model, draw_model):
    assert vocabulary_for(draw_model, {}) is None
    assert vocabulary_for(shapes_model, {"train": {"preset": "aligndraw_shapes_small"}}) == SHAPES_VOCAB
    assert vocabulary_for(shapes_model, {}) == SHAPES_VOCAB                             # vocab_size 31
    mnist = build(preset("aligndraw_mnist_small", A=20, B=20, **TINY))
    assert vocabulary_for(mnist, {"train": {"preset": "aligndraw_mnist_small"}}) == mnist_captions.VOCAB
    assert vocabulary_for(mnist, {}) == mnist_captions.VOCAB                            # vocab_size 23
    stored = Vocabulary.closed(f"w{i}" for i in range(30))
    assert vocabulary_for(shapes_model, {"vocab": stored.to_dict()}) == stored          # stored wins
    with pytest.raises(ValueError, match="23 words but the model embeds 31"):
        vocabulary_for(shapes_model, {"train": {"preset": "aligndraw_mnist_small"}})
    odd = build(preset("aligndraw_shapes_small", vocab_size=40, **TINY))
    with pytest.raises(ValueError, match="stores no vocabulary"):
        vocabulary_for(odd, {})
    with pytest.raises(ValueError, match="stores no vocabulary"):                      # COCO: never guessed
        vocabulary_for(shapes_model, {"train": {"preset": "aligndraw_coco_paper"}})
    with pytest.raises(ValueError, match="malformed"):
        vocabulary_for(shapes_model, {"vocab": {"words": ["<pad>"]}})


def test_encode_captions_errors():
    ids, lengths = encode_captions(SHAPES_VOCAB, [CAPTION, "a red circle ."], max_words_for(SHAPES_VOCAB))
    assert ids.shape == (2, 14) and lengths.tolist() == [14, 4] and ids[1, 4:].eq(0).all()
    assert max_words_for(mnist_captions.VOCAB) == 12 and max_words_for(SHAPES_VOCAB) == 18
    assert max_words_for(Vocabulary.closed(["x"])) == 64
    with pytest.raises(EmptyCaptionError, match="at least one word"):
        encode_captions(SHAPES_VOCAB, ["  "], 18)
    with pytest.raises(UnknownWordError, match="purple.*triangle"):
        encode_captions(SHAPES_VOCAB, ["a purple circle"], 18)
    with pytest.raises(ValueError, match="at most 12 words"):
        encode_captions(SHAPES_VOCAB, [CAPTION], 12)


def test_sample_is_deterministic_given_the_seed(shapes_model, draw_model):
    a = sample(shapes_model, SHAPES_VOCAB, CAPTION, n=3, seed=5)
    b = sample(shapes_model, SHAPES_VOCAB, CAPTION, n=3, seed=5)
    c = sample(shapes_model, SHAPES_VOCAB, CAPTION, n=3, seed=6)
    assert a.images.shape == (3, 3, 32, 32) and a.alpha.shape == (3, 3, 14)            # (M, T, L)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    u = sample(draw_model, None, None, n=2, seed=1)
    assert u.images.shape == (2, 1, 10, 12) and u.alpha is None
    assert torch.equal(u.images, sample(draw_model, None, None, n=2, seed=1).images)
    with pytest.raises(ValueError, match="unconditional"):
        sample(draw_model, None, "a red circle", n=1, seed=0)


# ---- the command line -----------------------------------------------------------------------
def test_sample_leaves_the_callers_random_state_and_the_models_mode_alone(shapes_model, draw_model):
    for model, vocab, caption in ((shapes_model, SHAPES_VOCAB, CAPTION), (draw_model, None, None)):
        model.train()
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        first = sample(model, vocab, caption, n=2, seed=5)
        assert torch.equal(torch.rand(3), expected)                 # the caller's stream goes on undisturbed
        assert model.training                                       # and the model is still in training mode
        model.eval()
        assert torch.equal(sample(model, vocab, caption, n=2, seed=5).images, first.images)
        assert not model.training


def test_main_writes_grid_and_animation(ckpts, tmp_path, capsys):
    out, gif = tmp_path / "new" / "grid.png", tmp_path / "anim" / "drawing.gif"
    assert main(["--checkpoint", str(ckpts["shapes"]), "--caption", CAPTION, "--n", "2", "--seed", "1",
                 "--out", str(out), "--animation", str(gif)]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 100
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 3                                  # one frame per step
    out2 = tmp_path / "draw.png"
    assert main(["--checkpoint", str(ckpts["draw"]), "--n", "3", "--out", str(out2),
                 "--animation", str(tmp_path / "draw.gif")]) == 0
    with Image.open(out2) as im:
        assert im.format == "PNG"
    assert "image(s)" in capsys.readouterr().out


def test_main_same_seed_same_png(ckpts, tmp_path):
    paths = [tmp_path / f"{k}.png" for k in "abc"]
    for path, seed in zip(paths, ["4", "4", "5"]):
        main(["--checkpoint", str(ckpts["draw"]), "--n", "2", "--seed", seed, "--out", str(path)])
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()


def test_caption_errors_exit_2(ckpts, tmp_path, capsys):
    base = ["--checkpoint", str(ckpts["shapes"]), "--out", str(tmp_path / "x.png")]
    err = fails(capsys, base + ["--caption", "a purple circle is in the middle"])
    assert "purple" in err and "known words are" in err and "magenta" in err
    assert "at least one word" in fails(capsys, base + ["--caption", ""])
    assert "at most 18 words" in fails(capsys, base + ["--caption", " ".join(["a"] * 19)])
    assert "give one with --caption" in fails(capsys, base)
    err = fails(capsys, ["--checkpoint", str(ckpts["draw"]), "--out", str(tmp_path / "y.png"),
                         "--caption", "a red circle"])
    assert "unconditional" in err
    assert ".gif" in fails(capsys, base + ["--caption", CAPTION, "--animation", str(tmp_path / "a.mp4")])
    assert not (tmp_path / "x.png").exists()


def test_bad_checkpoints_exit_2(tmp_path, ckpts, capsys):
    out = ["--out", str(tmp_path / "x.png")]
    err = fails(capsys, ["--checkpoint", str(tmp_path / "nope.pt")] + out)
    assert "no checkpoint at" in err and "nope.pt" in err
    broken = tmp_path / "broken.pt"
    data = ckpts["draw"].read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    err = fails(capsys, ["--checkpoint", str(broken)] + out)
    assert "broken.pt" in err and "checkpoint" in err
    (tmp_path / "empty.pt").write_bytes(b"")
    err = fails(capsys, ["--checkpoint", str(tmp_path / "empty.pt")] + out)
    assert "empty.pt is empty (0 bytes)" in err and "train again" in err
    torch.save({"kind": "draw", "config": argparse.Namespace(), "model": {}}, tmp_path / "objects.pt")
    err = fails(capsys, ["--checkpoint", str(tmp_path / "objects.pt")] + out)
    assert "holds Python objects that are not weights" in err and "will not be loaded" in err
    assert "weights_only" not in err                     # never the advice to unpickle it anyway


def test_subcommand_registration(ckpts, tmp_path):
    args = cli.build_parser().parse_args(["sample", "--checkpoint", str(ckpts["draw"]), "--n", "1",
                                          "--out", str(tmp_path / "one.png")])
    assert args.func is run and args.func(args) == 0 and (tmp_path / "one.png").exists()
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["--checkpoint", "c.pt", "--out", "o.png"]).n == 16


def test_sample_from_a_baseline_checkpoint(tmp_path, capsys):
    """The baselines draw from a caption too, in one step (so no animation)."""
    cfg = configs.load_config("fcvae_shapes_small", sets=["max_steps=1", "batch_size=4", "eval_every=0",
                                                        "eval_examples=4"])
    train.run(cfg, tmp_path / "vae", progress=False)
    grid = tmp_path / "grid.png"
    assert main(["--checkpoint", str(tmp_path / "vae" / "checkpoint.pt"), "--caption",
                 "a red circle on a white background .", "--n", "4", "--out", str(grid),
                 "--animation", str(tmp_path / "a.gif")]) == 0
    assert grid.stat().st_size > 0 and not (tmp_path / "a.gif").exists()
    assert "no animation" in capsys.readouterr().out


# ---- pretrained models --------------------------------------------------------------------------
def test_a_caption_alone_draws_with_the_pretrained_model_for_its_words(ckpts, tmp_path, monkeypatch, capsys):
    from minidraw import pretrained
    weights = tmp_path / "weights"
    pretrained.export(ckpts["shapes"], "aligndraw-shapes", weights_dir=weights)
    asked, real_path = [], pretrained.path

    def shipped(name, *args, **kwargs):
        asked.append(name)
        return real_path(name, weights_dir=weights)
    monkeypatch.setattr(pretrained, "path", shipped)
    out = tmp_path / "grid.png"
    assert main(["--caption", CAPTION, "--n", "2", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG"
    printed = capsys.readouterr().out
    assert asked == ["aligndraw-shapes"] and printed.count("pretrained model aligndraw-shapes:") == 1
    assert main(["--model", "aligndraw-shapes", "--caption", CAPTION, "--n", "1", "--out", str(out)]) == 0

    assert "nothing to draw from" in fails(capsys, ["--out", str(out)])
    assert "not both" in fails(capsys, ["--checkpoint", str(ckpts["shapes"]), "--model", "aligndraw-shapes",
                                        "--caption", CAPTION, "--out", str(out)])
    err = fails(capsys, ["--caption", "a purple circle", "--out", str(out)])
    assert "purple" in err and "MNIST with captions" in err
    err = fails(capsys, ["--model", "aligndraw-mnist", "--caption", CAPTION, "--out", str(out)])
    assert "not in" in err and "aligndraw-shapes" in err                           # not shipped in this folder
    assert "unconditional" not in err and asked[-1] == "aligndraw-mnist"
    err = fails(capsys, ["--model", "nope", "--out", str(out)])
    assert "no pretrained model named 'nope'" in err and "draw-mnist" in err


def test_the_first_command_draws_with_the_shipped_model_and_nothing_else(tmp_path, monkeypatch, capsys):
    """`minidraw sample --caption "..."` alone: the shipped aligndraw-mnist draws into ./sample.png."""
    from minidraw import pretrained
    if "aligndraw-mnist" not in pretrained.list():
        pytest.skip("no shipped aligndraw-mnist")
    monkeypatch.chdir(tmp_path)
    assert main(["--caption", "the digit 3 is on the left of the digit 7 ."]) == 0
    assert "aligndraw-mnist" in capsys.readouterr().out
    image = Image.open(tmp_path / "sample.png")
    assert image.size[0] > 200 and image.size[1] > 200


def test_a_caption_that_names_nothing_a_wild_temperature_and_too_many_samples_exit_2(ckpts, tmp_path, capsys):
    out = str(tmp_path / "g.png")
    base = ["--checkpoint", str(ckpts["shapes"]), "--out", out]
    assert "names nothing to draw" in fails(capsys, [*base, "--caption", "."])
    assert "circle square triangle" in fails(capsys, [*base, "--caption", "a red is on the left ."])
    with pytest.raises(SystemExit) as e:                                  # argparse: its usage, then one line
        main([*base, "--caption", CAPTION, "--temperature", "inf"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and "finite number, 0 or more" in err.splitlines()[-1]
    assert "give n at most" in fails(capsys, [*base, "--caption", CAPTION, "--n", "1000000"])
    with pytest.raises(ValueError, match="temperature"):
        sample(build(preset("aligndraw_shapes_small", **TINY)), SHAPES_VOCAB, CAPTION, 2, 0, float("nan"))


def test_many_samples_are_drawn_in_chunks_into_one_grid(shapes_model, tmp_path, capsys):
    """More samples than one chunk: the first chunk is sample()'s exactly, the grid one PNG of every drawing."""
    from PIL import Image

    from minidraw.sample import CHUNK, grid_array, sample_many, save_grid
    images, first = sample_many(shapes_model, SHAPES_VOCAB, CAPTION, CHUNK + 5, seed=3)
    assert images.shape[0] == CHUNK + 5
    torch.testing.assert_close(images[:CHUNK], sample(shapes_model, SHAPES_VOCAB, CAPTION, CHUNK, 3).images)
    assert first.canvases.shape[1] == CHUNK
    grid = grid_array(images[:6], ncols=4)                              # 2 rows of 4, 2-pixel white gaps
    C, B, A = images.shape[1:]
    assert grid.shape == (2 * (B + 2) + 2, 4 * (A + 2) + 2, 3) and (grid[:2] == 1).all()
    np.testing.assert_allclose(grid[2:2 + B, 2:2 + A], images[0].permute(1, 2, 0).numpy(), atol=1e-6)
    png = save_grid(images, tmp_path / "many.png", CAPTION)
    assert Image.open(png).size[0] >= 17 * A                           # about √M columns, one pixel per pixel
