"""`minidraw caption` (pictures -> captions), the image reader behind it, the drawing commands refusing a
captioner, and the cycle measure (caption -> drawing -> caption) of `minidraw evaluate`.

No test needs the shipped captioners: tiny random ones are saved here, and the cycle is checked with a
stand-in captioner that reads a known share of the real pictures right."""
from __future__ import annotations

import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from minidraw import checkpoint, pretrained
from minidraw.captioner import Captioner, CaptionerConfig
from minidraw.cli import main
from minidraw.configs import preset
from minidraw.data import mnist_captions, shapes, shapes_grammar
from minidraw.evaluate import Sizes, evaluate, markdown_table
from minidraw.images import ImageFileError, load_images
from minidraw.scoring import MissingDependencyError, accuracy, bleu4


def tiny_captioner(C=3, A=32, B=32, vocab=shapes_grammar.VOCAB, seed=0, cls=Captioner) -> Captioner:
    torch.manual_seed(seed)
    return cls(CaptionerConfig(A=A, B=B, C=C, vocab_size=len(vocab), channels=4, stem_stride=2, pools=1,
                               feature_size=8, embed_size=8, hidden_size=16, align_size=8, max_len=8))


def tiny_aligndraw():
    from minidraw.configs import preset
    from minidraw.models import build
    torch.manual_seed(0)
    return build(preset("aligndraw_shapes_small", T=2, enc_size=8, dec_size=8, z_size=3, lang_size=4,
                        align_size=4, embed_size=4))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from minidraw.configs import TrainConfig
    d = tmp_path_factory.mktemp("ckpts")
    paths = {"shapes": d / "captioner-shapes.pt", "grey": d / "captioner-grey.pt", "draw": d / "draw.pt"}
    checkpoint.save(paths["shapes"], tiny_captioner(), {"vocab": shapes_grammar.VOCAB.to_dict()})
    checkpoint.save(paths["grey"], tiny_captioner(C=1, A=60, B=60, vocab=mnist_captions.VOCAB),
                    {"vocab": mnist_captions.VOCAB.to_dict()})
    checkpoint.save(paths["draw"], tiny_aligndraw(), {"train": asdict(TrainConfig(preset="aligndraw_shapes_small")),
                                                      "vocab": shapes_grammar.VOCAB.to_dict()})
    return paths


@pytest.fixture
def no_shipped_weights(tmp_path, monkeypatch):
    """An empty weights folder: no pretrained captioner (nor any other model) is shipped."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", folder)
    return folder


def _fails(capsys, argv) -> str:
    """Run a command that must fail: exit status 2, one line on stderr, nothing on stdout, no traceback."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err and out == "", (out, err)
    return err


# ---- reading pictures -------------------------------------------------------------------------------
def test_grey_and_rgb_pictures_become_the_models_channels(tmp_path):
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))                 # (32, 32) a ramp
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "grey_rgb.png")
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red, "RGB").save(tmp_path / "red.png")
    as_rgb = load_images([tmp_path / "grey.png"], 3, 32, 32)
    assert as_rgb.shape == (1, 3, 32, 32) and as_rgb.dtype == torch.float32
    torch.testing.assert_close(as_rgb[0, 0], torch.from_numpy(grey / 255.0).float())   # same size: no resampling
    assert torch.equal(as_rgb[:, 0], as_rgb[:, 1]) and torch.equal(as_rgb[:, 0], as_rgb[:, 2])  # grey repeated
    as_grey = load_images([tmp_path / "grey.png", tmp_path / "grey_rgb.png", tmp_path / "red.png"], 1, 32, 32)
    assert torch.equal(as_grey[0], as_grey[1])                                     # the luminance of grey is the grey
    assert as_grey[2].mean().item() == pytest.approx(0.299, abs=0.003)             # L = 0.299 R + 0.587 G + 0.114 B


def test_any_size_is_resized_and_transparency_palette_and_16_bit_are_read(tmp_path):
    half = np.zeros((90, 64), np.uint8)
    half[:, :32] = 255                                                             # left half white
    Image.fromarray(half, "L").save(tmp_path / "half.png")
    x = load_images([tmp_path / "half.png"], 1, 60, 40)[0, 0]                      # 40 wide, 60 high
    assert x.shape == (60, 40) and torch.all(x[:, :19] == 1) and torch.all(x[:, 21:] == 0)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255                                                            # white, but...
    rgba[:4, ..., 3] = 255                                                         # ...only the top half opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    x = load_images([tmp_path / "rgba.png"], 3, 8, 8)[0]
    assert torch.all(x[:, :4] == 1) and torch.all(x[:, 4:] == 0)                   # transparent over black
    Image.fromarray(rgba[..., :3], "RGB").convert("P").save(tmp_path / "palette.png")
    assert torch.all(load_images([tmp_path / "palette.png"], 3, 8, 8) == 1)
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey
    assert torch.all(load_images([tmp_path / "deep.png"], 1, 8, 8) == 1)
    Image.fromarray(rgba[..., :3], "RGB").save(tmp_path / "white.jpg")
    assert load_images([tmp_path / "white.jpg"], 3, 16, 16).min() > 0.97


def test_an_unreadable_picture_is_an_error_that_names_it(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"\x89PNG but not really")
    for path, words in ((tmp_path / "fake.png", "cannot read"), (tmp_path / "gone.png", "no image at"),
                        (tmp_path, "is a folder")):
        with pytest.raises(ImageFileError, match=words) as e:
            load_images([path], 1, 8, 8)
        assert str(path) in str(e.value) and "PNG or JPEG" in str(e.value)
        assert isinstance(e.value, OSError)


# ---- minidraw caption --------------------------------------------------------------------------------
def test_caption_prints_one_line_per_picture(ckpts, tmp_path, capsys):
    rng = np.random.default_rng(0)
    files = [tmp_path / "grey.png", tmp_path / "big.png", tmp_path / "photo.jpg"]
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), "L").save(files[0])
    Image.fromarray(rng.integers(0, 256, (100, 70, 3), dtype=np.uint8), "RGB").save(files[1])
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), "RGB").save(files[2])
    model, ckpt = checkpoint.load(ckpts["shapes"])
    for beam in (1, 3):
        assert main(["caption", "--checkpoint", str(ckpts["shapes"]), "--beam", str(beam), *map(str, files)]) == 0
        lines = capsys.readouterr().out.splitlines()
        want = model.caption(load_images(files, 3, 32, 32), shapes_grammar.VOCAB, width=beam)
        assert lines == [f"{f}\t{w}" for f, w in zip(files, want)]                  # path<TAB>caption, in order
    assert main(["caption", "--checkpoint", str(ckpts["grey"]), str(files[1])]) == 0  # RGB into a grey captioner
    path, text = capsys.readouterr().out.rstrip("\n").split("\t")
    grey_model, _ = checkpoint.load(ckpts["grey"])
    assert path == str(files[1]) and [text] == grey_model.caption(load_images(files[1:2], 1, 60, 60),
                                                                  mnist_captions.VOCAB)


def test_caption_errors_are_one_line(ckpts, tmp_path, capsys, no_shipped_weights):
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(good)
    (tmp_path / "text.png").write_text("not a picture")
    cap = ["caption", "--checkpoint", str(ckpts["shapes"])]
    err = _fails(capsys, [*cap, str(good), str(tmp_path / "text.png")])           # nothing printed for ok.png
    assert "text.png" in err and "PNG or JPEG" in err
    assert "no image at" in _fails(capsys, [*cap, str(tmp_path / "missing.png")])
    err = _fails(capsys, ["caption", "--checkpoint", str(ckpts["draw"]), str(good)])
    assert "not a captioner" in err and "drawing model" in err and "captioner-mnist" in err
    assert "--checkpoint CKPT or --model NAME" in _fails(capsys, ["caption", str(good)])
    err = _fails(capsys, ["caption", "--model", "captioner-shapes", str(good)])
    assert "captioner-shapes" in err and "not in" in err
    assert "not both" in _fails(capsys, [*cap, "--model", "captioner-shapes", str(good)])


def test_caption_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["caption", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "IMAGE" in out and "--beam" in out and "--model" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "caption" in capsys.readouterr().out


# ---- the drawing commands refuse a captioner ---------------------------------------------------------
def test_sample_and_evaluate_refuse_a_captioner_in_one_line(ckpts, tmp_path, capsys):
    out = str(tmp_path / "grid.png")
    caption = shapes_grammar.EXAMPLES[0]
    err = _fails(capsys, ["sample", "--checkpoint", str(ckpts["shapes"]), "--caption", caption, "--out", out])
    assert "is a captioner" in err and "minidraw caption" in err
    err = _fails(capsys, ["sample", "--checkpoint", str(ckpts["draw"]), "--caption", caption, "--out", out,
                          "--sharpen", str(ckpts["shapes"])])
    assert "needs a sharpener checkpoint" in err and "captioner" in err
    err = _fails(capsys, ["evaluate", "--checkpoint", str(ckpts["shapes"]), "--metrics", "bound"])
    assert "is a captioner" in err and "--captioner" in err
    err = _fails(capsys, ["evaluate", "--checkpoint", str(ckpts["draw"]), "--metrics", "cycle",
                          "--captioner", str(ckpts["draw"])])
    assert "caption-to-image drawing model, not a captioner" in err
    err = _fails(capsys, ["evaluate", "--checkpoint", str(ckpts["draw"]), "--metrics", "bound",
                          "--captioner", str(ckpts["shapes"])])
    assert "add cycle to --metrics" in err
    from minidraw.sample import sample
    with pytest.raises(ValueError, match="captioner"):                              # and so does the Python API
        sample(tiny_captioner(), shapes_grammar.VOCAB, caption, 2, 0)


# ---- the cycle measure ----------------------------------------------------------------------------
class _Oracle(torch.nn.Module):
    """A stand-in drawing model that draws the true picture of each caption it has seen (or black)."""

    def __init__(self, *datasets, n):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.cfg = preset("aligndraw_mnist_small")            # its kind: a caption-to-image drawing model
        self.table = {}
        for data in datasets:
            b = data.batch(np.arange(n))
            self.table.update({tuple(c[:k].tolist()): x for c, k, x in zip(b.captions, b.lengths, b.images)})
        self.blind = False

    def generate(self, captions, lengths):
        images = torch.stack([self.table[tuple(c[:k].tolist())] for c, k in zip(captions, lengths)])
        return type("Generated", (), {"images": torch.zeros_like(images) if self.blind else images})


class _Reader(Captioner):
    """A stand-in captioner that knows the real pictures it was shown: it reads a third of them right,
    a third with the wrong background (some of the scene's facts right) and a third not at all. Any
    other picture it cannot read."""

    def learn(self, *datasets, n):
        self.known = {}
        for data in datasets:
            b = data.batch(np.arange(n))
            for x, text in zip(b.images, b.texts(data.vocab)):
                words = text.split()
                i = len(self.known)
                if i % 3 == 1:                                                     # another background
                    at = words.index("background") - 1
                    words[at] = "black" if words[at] != "black" else "white"
                self.known[x.numpy().tobytes()] = " ".join(words) if i % 3 != 2 else "nonsense ."
        return self

    def caption(self, images, vocab, width=1, max_len=None):
        return [self.known.get(x.cpu().numpy().tobytes(), "") for x in images]


@pytest.fixture(scope="module")
def shapes_splits():
    return {"train": shapes.ShapesCaptions("train"), "test": shapes.ShapesCaptions("test"),
            "heldout": shapes.ShapesCaptions("heldout")}


class _Identity(torch.nn.Module):
    """A sharpener that changes nothing."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def sharpen(self, images, captions, lengths):
        return images


def test_the_cycle_of_a_perfect_drawing_is_the_captioners_own_accuracy(shapes_splits):
    n = 24
    test, heldout = shapes_splits["test"], shapes_splits["heldout"]
    drawer = _Oracle(test, heldout, n=n)
    reader = tiny_captioner(cls=_Reader).learn(test, heldout, n=n)
    row = evaluate(drawer, shapes_splits, ["cycle"], Sizes(fidelity=n), captioner=(reader, shapes_grammar.VOCAB),
                   sharpener=_Identity())
    for split, key in ((test, "seen"), (heldout, "heldout")):
        own = accuracy(reader, split, n)                                           # the captioner on real pictures
        assert row[f"cycle_exact_{key}"] == pytest.approx(own["exact"])
        assert row[f"cycle_slots_{key}"] == pytest.approx(own["slots"])
        assert row[f"cycle_exact_{key}"] == pytest.approx(100 / 3)                  # a third read exactly right...
        assert 100 / 3 < row[f"cycle_slots_{key}"] < 200 / 3                       # ...a third in part
        assert row[f"cycle_exact_{key}_sharp"] == row[f"cycle_exact_{key}"]       # the sharpener changes nothing
    assert "| cycle exact seen % | cycle slots seen % |" in markdown_table({"oracle": row})
    drawer.blind = True                                                            # draws nothing at all
    row = evaluate(drawer, shapes_splits, ["cycle"], Sizes(fidelity=n), captioner=reader)
    assert row["cycle_exact_seen"] == row["cycle_slots_seen"] == row["cycle_exact_heldout"] == 0


def test_the_cycle_defaults_to_the_shipped_captioner_and_says_when_there_is_none(
        ckpts, shapes_splits, no_shipped_weights):
    drawer = _Oracle(shapes_splits["test"], shapes_splits["heldout"], n=6)
    with pytest.raises(ValueError, match="captioner-shapes") as e:
        evaluate(drawer, shapes_splits, ["cycle"], Sizes(fidelity=6))
    assert "--captioner" in str(e.value) and "minidraw train --config captioner-shapes" in str(e.value)
    pretrained.export(ckpts["shapes"], "captioner-shapes", weights_dir=no_shipped_weights)
    row = evaluate(drawer, shapes_splits, ["cycle"], Sizes(fidelity=6))
    same = evaluate(drawer, shapes_splits, ["cycle"], Sizes(fidelity=6), captioner=pretrained.load("captioner-shapes"))
    keys = {"cycle_exact_seen", "cycle_slots_seen", "cycle_exact_heldout", "cycle_slots_heldout"}
    assert keys <= set(row) and {k: row[k] for k in keys} == {k: same[k] for k in keys}
    assert all(0 <= row[k] <= 100 for k in keys)


def test_a_captioner_that_does_not_fit_the_data_is_refused(shapes_splits):
    drawer = _Oracle(shapes_splits["test"], n=2)
    for captioner, words in ((tiny_captioner(C=1, A=60, B=60, vocab=mnist_captions.VOCAB), "1×60×60"),
                             ((tiny_captioner(), mnist_captions.VOCAB), "another vocabulary"),
                             (tiny_captioner(vocab=mnist_captions.VOCAB), "23 word ids"),
                             (tiny_aligndraw(), "needs a captioner")):
        with pytest.raises(ValueError, match=words):
            evaluate(drawer, shapes_splits, ["cycle"], Sizes(fidelity=2), captioner=captioner)


def test_evaluate_command_with_a_captioner(ckpts, tmp_path, capsys, no_shipped_weights):
    import json
    out = tmp_path / "row.json"
    assert main(["evaluate", "--checkpoint", str(ckpts["draw"]), "--metrics", "cycle", "--fidelity", "3",
                 "--captioner", str(ckpts["shapes"]), "--device", "cpu", "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert all(0 <= row[f"cycle_{m}_{s}"] <= 100 for m in ("exact", "slots") for s in ("seen", "heldout"))
    assert "cycle exact held-out %" in capsys.readouterr().out
    err = _fails(capsys, ["evaluate", "--checkpoint", str(ckpts["draw"]), "--metrics", "cycle", "--fidelity", "3",
                          "--device", "cpu"])                                      # none given, none shipped
    assert "captioner-shapes" in err and "--captioner" in err
    err = _fails(capsys, ["evaluate", "--checkpoint", str(ckpts["draw"]), "--metrics", "cycle",
                          "--captioner", "captioner-mnist"])
    assert "captioner-mnist" in err


# ---- BLEU-4 for MS-COCO ----------------------------------------------------------------------------
class _Coco:
    """An MS-COCO stand-in: an open vocabulary, so the cycle is scored with BLEU-4."""

    TEXTS = ["a man rides a horse on the beach", "two dogs play with a ball in the park",
             "a plate of food on a wooden table", "a red bus parked next to the road"]

    def __init__(self):
        from minidraw.text import Vocabulary
        self.vocab = Vocabulary.from_corpus(self.TEXTS, min_count=1)
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(len(self.TEXTS), 3, 32, 32, generator=g)

    def __len__(self):
        return len(self.TEXTS)

    def texts(self, idx):
        return [self.vocab.decode(self.vocab.encode(self.TEXTS[i])) for i in np.asarray(idx)]

    def batch(self, idx):
        from minidraw.data.common import CaptionBatch
        from minidraw.text import pad
        idx = np.asarray(idx)
        captions, lengths = pad([self.vocab.encode(self.TEXTS[i]) for i in idx])
        return CaptionBatch(self.images[torch.from_numpy(idx)], captions, lengths)


def test_the_cycle_on_coco_is_bleu_and_needs_sacrebleu(monkeypatch):
    data = _Coco()
    drawer = _Oracle(data, n=len(data))
    reader = tiny_captioner(vocab=data.vocab, cls=_Reader)
    reader.known = {x.numpy().tobytes(): t for x, t in zip(data.images, data.texts(range(len(data))))}
    splits = {"train": data, "test": data}
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "sacrebleu", None)                                  # as if not installed
        for call in (lambda: evaluate(drawer, splits, ["cycle"], Sizes(fidelity=4), captioner=(reader, data.vocab)),
                     lambda: bleu4(["a"], ["a"])):
            with pytest.raises(MissingDependencyError, match=r"pip install sacrebleu") as e:
                call()
            assert isinstance(e.value, ImportError)
    pytest.importorskip("sacrebleu")
    row = evaluate(drawer, splits, ["cycle"], Sizes(fidelity=4), captioner=(reader, data.vocab))
    assert row["cycle_bleu_seen"] == pytest.approx(100) and "cycle_exact_seen" not in row   # every caption exact
    reader.known = dict(zip(reader.known, reversed(list(reader.known.values()))))           # all the wrong way round
    assert evaluate(drawer, splits, ["cycle"], Sizes(fidelity=4), captioner=reader)["cycle_bleu_seen"] < 10
