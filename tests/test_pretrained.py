"""Named pretrained weights: export, registry, sha256 checks, fetching from a file:// folder, and
picking a model for a caption. Everything in temporary folders; never the network."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from minidraw import configs, pretrained, train
from minidraw.data import mnist_captions
from minidraw.text import EmptyCaptionError, UnknownWordError

MNIST_CAPTION = "the digit 3 is on the left of the digit 7 ."
SHAPES_CAPTION = "a large red circle is at the top left on a white background ."
TINY = ["max_steps=2", "batch_size=4", "eval_examples=4", "eval_every=0", "seed=1", "model.T=2",
        "model.read_N=2", "model.write_N=3", "model.enc_size=16", "model.dec_size=16", "model.z_size=4",
        "model.embed_size=8", "model.lang_size=8", "model.align_size=8"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, mnist_dir) -> Path:
    """A tiny alignDRAW trained for 2 steps on MNIST with captions: a real training checkpoint."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIDRAW_DATA", str(mnist_dir.parent))
        train.run(configs.load_config("compose_mnist_small", None, TINY), out, progress=False)
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def weights(tmp_path_factory, checkpoint) -> Path:
    """A weights folder holding the tiny model exported as ``aligndraw-mnist``."""
    d = tmp_path_factory.mktemp("weights")
    assert pretrained.export(checkpoint, "aligndraw-mnist", weights_dir=d) == d / "aligndraw-mnist.pt"
    return d


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- export and load -----------------------------------------------------------------------------
def test_export_registers_its_sha256_and_drops_the_optimizer(checkpoint, weights):
    file = weights / "aligndraw-mnist.pt"
    assert pretrained.registry(weights) == {"aligndraw-mnist.pt": sha256(file)}
    assert (weights / "registry.txt").read_text().startswith("#")                      # pooch's format, a header
    saved = torch.load(file, weights_only=True)
    assert set(saved) == {"kind", "config", "model", "vocab", "train", "step", "data"}
    assert "optimizer" in torch.load(checkpoint, weights_only=True)                    # the checkpoint had it
    assert saved["step"] == 2 and saved["vocab"] == mnist_captions.VOCAB.to_dict()
    assert all(v.dtype == torch.float16 for v in saved["model"].values() if v.is_floating_point())
    assert file.stat().st_size < checkpoint.stat().st_size / 2
    assert not list(weights.glob("*.tmp"))


def test_load_gives_float32_in_eval_mode_equal_within_float16(checkpoint, weights):
    original = torch.load(checkpoint, weights_only=True)["model"]
    model, vocab = pretrained.load("aligndraw-mnist", weights_dir=weights)
    assert vocab == mnist_captions.VOCAB and not model.training
    state = model.state_dict()
    assert state.keys() == original.keys()
    for k, v in state.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32, k
            assert torch.equal(v, original[k].half().float()), k                      # fp16 -> fp32 is exact
            torch.testing.assert_close(v, original[k], rtol=1e-3, atol=1e-4)
    model(*_batch(vocab))                                                              # it runs in float32


def _batch(vocab):
    ids, lengths = vocab.encode_batch([MNIST_CAPTION] * 2)
    return torch.rand(2, 1, 60, 60), ids, lengths


def test_list_info_and_path(weights):
    assert pretrained.list(weights) == ["aligndraw-mnist"]
    assert pretrained.path("aligndraw-mnist", weights_dir=weights) == weights / "aligndraw-mnist.pt"
    i = pretrained.info("aligndraw-mnist", weights_dir=weights)
    assert i == {"name": "aligndraw-mnist", "file": "aligndraw-mnist.pt", "sha256": sha256(weights / i["file"]),
                 "description": pretrained.MODELS["aligndraw-mnist"]["description"], "data": "mnist_captions",
                 "card": None}
    assert set(pretrained.list()) <= set(pretrained.MODELS)                           # the package's own registry
    assert pretrained.list(weights.parent / "nowhere") == []


def test_export_again_replaces_the_registry_line(checkpoint, weights, tmp_path):
    d = tmp_path / "w"
    shutil.copytree(weights, d)
    (d / "registry.txt").write_text((d / "registry.txt").read_text() + "draw-mnist.pt " + "0" * 64 + "\n")
    (d / "aligndraw-mnist.md").write_text("# aligndraw-mnist\n")
    pretrained.export(checkpoint, "aligndraw-mnist", weights_dir=d)
    lines = [x.split() for x in (d / "registry.txt").read_text().splitlines() if not x.startswith("#")]
    assert sorted(x[0] for x in lines) == ["aligndraw-mnist.pt", "draw-mnist.pt"]     # one line each
    assert pretrained.list(d) == ["aligndraw-mnist", "draw-mnist"]
    assert pretrained.info("aligndraw-mnist", weights_dir=d)["card"] == d / "aligndraw-mnist.md"
    with pytest.raises(ValueError, match="noalignDRAW.*holds.*the align variant"):
        pretrained.export(checkpoint, "noaligndraw-mnist", weights_dir=d)
    with pytest.raises(ValueError, match="unconditional DRAW"):
        pretrained.export(checkpoint, "draw-mnist", weights_dir=d)
    with pytest.raises(pretrained.UnknownModelError, match="aligndraw-coco"):
        pretrained.export(checkpoint, "aligndraw-coco", weights_dir=d)
    assert sorted(p.name for p in d.iterdir()) == ["aligndraw-mnist.md", "aligndraw-mnist.pt", "registry.txt"]


def test_a_run_from_the_shipped_weights_exports_as_their_next_stage(checkpoint, weights, tmp_path, mnist_dir,
                                                                    monkeypatch):
    """A run trained from the weights it then replaces — ``init=NAME`` or any path to the same bytes (decided by the
    sha256 the run records): the file counts every stage's steps and lists each one's settings; exporting the same
    run again changes nothing; a run that did not start from them replaces them as before."""
    d = tmp_path / "w"
    shutil.copytree(weights, d)
    monkeypatch.setenv("MINIDRAW_DATA", str(mnist_dir.parent))
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", d)                      # init=aligndraw-mnist reads this folder
    train.run(configs.load_config("compose_mnist_small", None, [*TINY, "max_steps=3", "init=aligndraw-mnist"]),
              tmp_path / "next", progress=False)
    pretrained.export(tmp_path / "next" / "checkpoint.pt", "aligndraw-mnist", weights_dir=d)
    saved = torch.load(d / "aligndraw-mnist.pt", weights_only=True)
    assert saved["step"] == 2 + 3
    assert [s["step"] for s in saved["stages"]] == [2, 3]
    assert saved["stages"][0]["train"]["init"] == "" and saved["stages"][1]["train"]["init"] == "aligndraw-mnist"
    pretrained.export(tmp_path / "next" / "checkpoint.pt", "aligndraw-mnist", weights_dir=d)   # the same, again
    assert [s["step"] for s in torch.load(d / "aligndraw-mnist.pt", weights_only=True)["stages"]] == [2, 3]
    copy = tmp_path / "elsewhere.pt"                                       # init= a copy of the file, by its path:
    shutil.copy(d / "aligndraw-mnist.pt", copy)                            # the same content, so the next stage
    train.run(configs.load_config("compose_mnist_small", None, [*TINY, "max_steps=4", f"init={copy}"]),
              tmp_path / "third", progress=False)
    pretrained.export(tmp_path / "third" / "checkpoint.pt", "aligndraw-mnist", weights_dir=d)
    assert [s["step"] for s in torch.load(d / "aligndraw-mnist.pt", weights_only=True)["stages"]] == [2, 3, 4]
    pretrained.export(checkpoint, "aligndraw-mnist", weights_dir=d)        # from scratch: one stage again
    saved = torch.load(d / "aligndraw-mnist.pt", weights_only=True)
    assert saved["step"] == 2 and "stages" not in saved
    # a second stage from a training checkpoint (the recipe's stage 2 from RUN/checkpoint.pt): both stages
    train.run(configs.load_config("compose_mnist_small", None, [*TINY, "max_steps=2", f"init={checkpoint}"]),
              tmp_path / "stage2", progress=False)
    pretrained.export(tmp_path / "stage2" / "checkpoint.pt", "aligndraw-mnist", weights_dir=d)
    saved = torch.load(d / "aligndraw-mnist.pt", weights_only=True)
    assert [s["step"] for s in saved["stages"]] == [2, 2] and saved["step"] == 4
    assert saved["stages"][1]["train"]["init"] == str(checkpoint)


# ---- what goes wrong ------------------------------------------------------------------------------
def test_a_corrupted_copy_is_refused(weights, tmp_path):
    d = tmp_path / "w"
    shutil.copytree(weights, d)
    data = bytearray((d / "aligndraw-mnist.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "aligndraw-mnist.pt").write_bytes(bytes(data))
    for call in (lambda: pretrained.path("aligndraw-mnist", weights_dir=d),
                 lambda: pretrained.load("aligndraw-mnist", weights_dir=d)):
        with pytest.raises(pretrained.ChecksumError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and str(d / "aligndraw-mnist.pt") in msg
        assert sha256(weights / "aligndraw-mnist.pt") in msg and hashlib.sha256(data).hexdigest() in msg
        assert "delete it" in msg and "export" in msg


def test_unknown_or_unshipped_names_list_the_known_ones(weights):
    with pytest.raises(pretrained.UnknownModelError) as e:
        pretrained.load("aligndraw-coco", weights_dir=weights)
    assert all(name in str(e.value) for name in pretrained.MODELS) and isinstance(e.value, ValueError)
    with pytest.raises(pretrained.UnknownModelError, match="not in .*registry.txt.*shipped: aligndraw-mnist"):
        pretrained.info("aligndraw-shapes", weights_dir=weights)


# ---- fetching -------------------------------------------------------------------------------------
def test_a_missing_file_is_fetched_from_the_weights_url_and_checked(weights, tmp_path, monkeypatch):
    d, served, cache = tmp_path / "installed", tmp_path / "served", tmp_path / "cache"
    d.mkdir()
    served.mkdir()
    shutil.copy(weights / "registry.txt", d)                                          # hashes, but no weights
    shutil.copy(weights / "aligndraw-mnist.pt", served)
    monkeypatch.setenv("MINIDRAW_WEIGHTS_URL", served.as_uri())
    got = pretrained.path("aligndraw-mnist", weights_dir=d, cache=cache, progress=False)
    assert got == cache / "aligndraw-mnist.pt" and sha256(got) == sha256(weights / "aligndraw-mnist.pt")
    (served / "aligndraw-mnist.pt").unlink()                                          # now offline: the cache serves
    assert pretrained.path("aligndraw-mnist", weights_dir=d, cache=cache) == got
    model, vocab = pretrained.load("aligndraw-mnist", weights_dir=d, cache=cache)
    assert vocab == mnist_captions.VOCAB and next(model.parameters()).dtype == torch.float32

    with pytest.raises(RuntimeError) as e:                                            # nowhere to fetch from
        pretrained.path("aligndraw-mnist", weights_dir=d, cache=tmp_path / "empty", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and served.as_uri() + "/aligndraw-mnist.pt" in msg and str(tmp_path / "empty") in msg
    assert "MINIDRAW_WEIGHTS_URL" in msg

    data = bytearray((weights / "aligndraw-mnist.pt").read_bytes())                 # a corrupt download
    data[100] ^= 1
    (served / "aligndraw-mnist.pt").write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="does not match the known hash"):
        pretrained.path("aligndraw-mnist", weights_dir=d, cache=tmp_path / "fresh", progress=False)
    assert not any((tmp_path / "fresh").iterdir())                                   # nothing half-written kept


def test_offline_default_url_gives_one_line(weights, tmp_path, monkeypatch):
    import requests

    d = tmp_path / "installed"
    d.mkdir()
    shutil.copy(weights / "registry.txt", d)
    monkeypatch.delenv("MINIDRAW_WEIGHTS_URL", raising=False)
    asked = []

    def offline(url, progress=True, timeout=30.0):
        asked.append(url)

        def fail(*args):
            raise requests.ConnectionError("Failed to resolve 'github.com'")
        return fail
    monkeypatch.setattr(pretrained, "downloader", offline)
    with pytest.raises(RuntimeError) as e:
        pretrained.path("aligndraw-mnist", weights_dir=d, cache=tmp_path / "cache")
    assert asked == [pretrained.BASE_URL + "aligndraw-mnist.pt"]
    msg = str(e.value)
    assert "\n" not in msg and asked[0] in msg and "ConnectionError" in msg and "internet" in msg


# ---- a model for a caption --------------------------------------------------------------------------
def test_for_caption_picks_by_vocabulary():
    assert pretrained.for_caption(MNIST_CAPTION) == "aligndraw-mnist"
    assert pretrained.for_caption("The digit 0 is at the TOP LEFT of the image.") == "aligndraw-mnist"
    assert pretrained.for_caption(SHAPES_CAPTION) == "aligndraw-shapes"
    with pytest.raises(UnknownWordError) as e:
        pretrained.for_caption("a purple circle is at the top left")
    msg = str(e.value)
    assert "purple" in msg and "digit" in msg and "magenta" in msg                    # both vocabularies listed
    with pytest.raises(ValueError, match=r"MNIST with captions lacks \['a', 'circle'\].*shapes lacks \['3', 'digit'\]"):
        pretrained.for_caption("the digit 3 is a circle")
    with pytest.raises(EmptyCaptionError):
        pretrained.for_caption(" ")


def test_base_url_is_the_repository_of_pyproject():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    repository = project["project"]["urls"]["Repository"]
    assert pretrained.BASE_URL == f"{repository}/raw/main/minidraw/weights/"        # `make repository` moves both
    assert "pooch>=1.6" in project["project"]["dependencies"]
    assert "weights/*.pt" in project["tool"]["setuptools"]["package-data"]["minidraw"]


def test_the_suite_cannot_reach_the_network_but_can_reach_loopback():
    import socket
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)           # TEST-NET-1: never routed
    with pytest.raises(AssertionError, match="network"):
        socket.socket().connect(("192.0.2.1", 80))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    socket.create_connection(server.getsockname(), timeout=1).close()      # loopback is allowed
    server.close()


def test_every_card_carries_its_notes():
    """A note kept beside a recipe (``minidraw/recipes/NAME.notes.md``: what a user of the weights must know, e.g.
    seed variance) appears in that model's card, so a re-export that drops it fails here."""
    from pathlib import Path
    recipes = Path(pretrained.__file__).parent / "recipes"
    notes = sorted(recipes.glob("*.notes.md"))
    assert notes, "no card notes found"
    for path in notes:
        name = path.name[: -len(".notes.md")]
        card = (Path(pretrained.__file__).parent / "weights" / f"{name}.md").read_text()
        assert "## Notes" in card and path.read_text().strip() in card, f"{name}.md lacks its notes ({path.name})"


def test_the_weights_url_may_be_a_folder_and_a_missing_one_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.ENV_URL, str(tmp_path))
    assert pretrained.weights_url() == tmp_path.resolve().as_uri() + "/"
    monkeypatch.setenv(pretrained.ENV_URL, str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match="neither a URL .* nor a folder"):
        pretrained.weights_url()
    monkeypatch.setenv(pretrained.ENV_URL, "https://example.org/w")
    assert pretrained.weights_url() == "https://example.org/w/"
