"""Named pretrained models: shipped float16 weights, sha256-checked, fetched once when missing.

    from minidraw import pretrained
    pretrained.list()                                  # e.g. ['aligndraw-mnist', 'draw-mnist']
    model, vocab = pretrained.load("aligndraw-mnist")  # float32, eval mode, and its Vocabulary

The weights live inside the package, in ``minidraw/weights/`` (so a wheel carries
them), one file per model; ``minidraw/weights/registry.txt`` — pooch's registry
format, ``<file> <sha256>`` a line — is the single source of their hashes. A
name whose file is not in the registry is not offered. :func:`path` uses the
package's own copy when its sha256 matches, else fetches the file with pooch from
:data:`BASE_URL` (or ``$MINIDRAW_WEIGHTS_URL``, an ``https://`` or ``file://``
folder) into ``~/.cache/minidraw/weights``, checked against the same hash.
:func:`export` turns a training checkpoint into such a file (the model in
float16, no optimiser state) and records its hash. :func:`for_caption` picks the
model whose vocabulary holds every word of a caption.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional

import pooch
import torch
from torch import nn

from .checkpoint import load as load_checkpoint
from .data.download import atomic_write, cache_dir, downloader, one_line
from .models import kind_of
from .sample import VOCABULARIES, vocabulary_for
from .text import EmptyCaptionError, UnknownWordError, Vocabulary, tokenize

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY = "registry.txt"
REGISTRY_HEADER = "# <file> <sha256>, one a line (pooch's registry format); written by minidraw.pretrained.export\n"
BASE_URL = "https://github.com/minidraw/minidraw/raw/main/minidraw/weights/"
ENV_URL = "MINIDRAW_WEIGHTS_URL"
# name -> its file, what it is, the data set it learned from, and its kind of model (minidraw.models.KINDS) and,
# for the caption models, variant: what export checks
MODELS: dict[str, dict[str, Optional[str]]] = {
    "aligndraw-mnist": {"file": "aligndraw-mnist.pt", "data": "mnist_captions", "kind": "compose",
                        "variant": "align",
                        "description": "alignDRAW on MNIST with captions (60×60, one or two digits), ours: α averages "
                                       "the word embeddings and the generator is split into a where-LSTM and a "
                                       "what-LSTM (minidraw.compose)"},
    "aligndraw-mnist-paper": {"file": "aligndraw-mnist-paper.pt", "data": "mnist_captions", "kind": "caption",
                              "variant": "align",
                              "description": "the paper's alignDRAW on MNIST with captions, exactly: α over the "
                                             "bidirectional LSTM's states, one generator LSTM (minidraw.aligndraw)"},
    "noaligndraw-mnist": {"file": "noaligndraw-mnist.pt", "data": "mnist_captions", "kind": "caption",
                          "variant": "noalign",
                          "description": "noalignDRAW (one sentence vector, no alignment) on MNIST with captions"},
    "aligndraw-shapes": {"file": "aligndraw-shapes.pt", "data": "shapes", "kind": "caption", "variant": "align",
                         "description": "alignDRAW on captioned shapes (32×32 colour)"},
    "draw-mnist": {"file": "draw-mnist.pt", "data": "mnist", "kind": "draw", "variant": None,
                   "description": "unconditional DRAW on 28×28 binarised MNIST"},
    "sharpen-mnist": {"file": "sharpen-mnist.pt", "data": "mnist_captions", "kind": "sharpener", "variant": None,
                      "description": "the sharpener (one caption-conditioned LAPGAN level) for MNIST with captions"},
    "sharpen-shapes": {"file": "sharpen-shapes.pt", "data": "shapes", "kind": "sharpener", "variant": None,
                       "description": "the sharpener (one caption-conditioned LAPGAN level) for captioned shapes"},
    "lapgan-mnist": {"file": "lapgan-mnist.pt", "data": "mnist_captions", "kind": "lapgan", "variant": None,
                     "description": "the LAPGAN baseline's coarse level (a caption-conditioned GAN at 30×30) for MNIST "
                                    "with captions; sharpen-mnist adds the finer level"},
    "captioner-mnist": {"file": "captioner-mnist.pt", "data": "mnist_captions", "kind": "captioner", "variant": None,
                        "description": "the image-to-text captioner (soft attention) for MNIST with captions"},
    "captioner-shapes": {"file": "captioner-shapes.pt", "data": "shapes", "kind": "captioner", "variant": None,
                         "description": "the image-to-text captioner (soft attention) for captioned shapes"},
}


class UnknownModelError(ValueError):
    """No pretrained model of that name, or none of its weights shipped."""


class ChecksumError(RuntimeError):
    """A weights file whose sha256 is not the registry's."""


def _dir(weights_dir: str | os.PathLike | None) -> Path:
    return WEIGHTS_DIR if weights_dir is None else Path(weights_dir).expanduser()


def registry(weights_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """``{file: sha256}`` from ``<weights_dir>/registry.txt`` (empty when there is no registry)."""
    file = _dir(weights_dir) / REGISTRY
    if not file.is_file():
        return {}
    reader = pooch.create(path=file.parent, base_url="")
    reader.load_registry(file)                                            # pooch's own parser and format
    hashes = {}
    for name, h in reader.registry.items():
        alg, _, digest = h.rpartition(":")
        if alg not in ("", "sha256"):
            raise ValueError(f"{file}: {name} has a {alg} hash; the registry holds sha256 hashes only")
        hashes[name] = digest
    return hashes


def list(weights_dir: str | os.PathLike | None = None) -> list[str]:  # noqa: A001 -- pretrained.list()
    """The names of the models whose weights are in the registry."""
    files = registry(weights_dir)
    return [name for name, m in MODELS.items() if m["file"] in files]


def _entry(name: str, weights_dir: str | os.PathLike | None) -> tuple[str, str]:
    """``(file, sha256)`` of ``name``; :class:`UnknownModelError` naming what there is otherwise."""
    files = registry(weights_dir)
    shipped = ", ".join(n for n, m in MODELS.items() if m["file"] in files) or "none yet"
    if name not in MODELS:
        raise UnknownModelError(f"no pretrained model named {name!r}; the names are {', '.join(MODELS)} "
                                f"(weights shipped: {shipped})")
    file = MODELS[name]["file"]
    if file not in files:
        raise UnknownModelError(f"the weights of {name!r} ({file}) are not in {_dir(weights_dir) / REGISTRY} "
                                f"yet (pretrained.export adds them); weights shipped: {shipped}")
    return file, files[file]


def info(name: str, weights_dir: str | os.PathLike | None = None) -> dict:
    """``{"name", "file", "sha256", "description", "data", "card"}``; ``card`` is the model card's
    path (``<file stem>.md`` beside the weights), ``None`` when there is none."""
    file, sha256 = _entry(name, weights_dir)
    card = _dir(weights_dir) / (Path(file).stem + ".md")
    return {"name": name, "file": file, "sha256": sha256, "description": MODELS[name]["description"],
            "data": MODELS[name]["data"], "card": card if card.is_file() else None}


def path(name: str, weights_dir: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
         progress: bool = True) -> Path:
    """The weights file of ``name``: the package's own copy, else one fetched into ``cache``.

    Raises :class:`UnknownModelError` for a name not offered, :class:`ChecksumError`
    when the package's copy does not match its hash, and ``RuntimeError`` when the
    file cannot be fetched (offline, say); each says what to do.
    """
    file, sha256 = _entry(name, weights_dir)
    local = _dir(weights_dir) / file
    if local.is_file():
        found = pooch.file_hash(str(local), alg="sha256")
        if found != sha256:
            raise ChecksumError(f"{local}: sha256 {found} is not the registry's {sha256}; the file is corrupt "
                                "or changed since it was exported: delete it (it is then downloaded again), "
                                "reinstall minidraw, or export it again with minidraw.pretrained.export")
        return local
    base = weights_url()
    folder = cache_dir("weights") if cache is None else Path(cache).expanduser()
    fetcher = pooch.create(path=folder, base_url=base, registry={file: f"sha256:{sha256}"})
    show = progress and importlib.util.find_spec("tqdm") is not None
    try:
        return Path(fetcher.fetch(file, downloader=downloader(base + file, show)))
    except Exception as e:  # noqa: BLE001 -- offline, not found, wrong hash: one message that says what to do
        raise RuntimeError(f"cannot get the weights of {name!r}: {file} is not in {local.parent}, and fetching "
                           f"{base + file} into {folder} failed ({one_line(e)}); on a machine with internet "
                           f"access run `python -c \"from minidraw import pretrained; print(pretrained.path("
                           f"'{name}'))\"` and copy the file into {folder}, or set {ENV_URL} to a folder "
                           "(https:// or file://) that holds it") from None


def weights_url() -> str:
    """Where shipped weights are fetched from: ``$MINIDRAW_WEIGHTS_URL`` (``https://…``, ``file://…`` or a folder
    on this machine) or :data:`BASE_URL`, ending in ``/``."""
    base = os.environ.get(ENV_URL) or BASE_URL
    if "://" not in base:
        folder = Path(base).expanduser()
        if not folder.is_dir():
            raise RuntimeError(f"{ENV_URL}={base!r} is neither a URL (https://… or file://…) nor a folder on this "
                               "machine: give the folder that holds the weights files, or a URL")
        base = folder.resolve().as_uri()
    return base if base.endswith("/") else base + "/"


def load(name: str, device: str | torch.device = "cpu", weights_dir: str | os.PathLike | None = None,
         cache: str | os.PathLike | None = None, progress: bool = True) -> tuple[nn.Module, Optional[Vocabulary]]:
    """``(model, vocabulary)`` of the pretrained model ``name``: float32, in eval mode, on ``device``.

    The vocabulary is ``None`` for an unconditional model (``draw-mnist``).
    Loads through :func:`minidraw.train.load` (``weights_only=True``).
    """
    model, ckpt = load_checkpoint(path(name, weights_dir, cache, progress), map_location=device)
    model = model.float().to(device).eval()
    return model, vocabulary_for(model, ckpt)


# ---- writing shipped weights ------------------------------------------------------------------
def _check_fits(name: str, model: nn.Module, vocab: Optional[Vocabulary]) -> None:
    """``ValueError`` unless the checkpoint is the kind of model ``name`` promises."""
    entry, kind = MODELS[name], kind_of(model)
    variant = getattr(model.cfg, "variant", None)
    if kind.name != entry["kind"] or variant != entry["variant"]:
        raise ValueError(f"{name} is {entry['description']}, but the checkpoint holds {kind.words}"
                         + (f", the {variant} variant" if variant else ""))
    if kind.takes_caption and vocab != VOCABULARIES[entry["data"]]:
        raise ValueError(f"{name} draws from {entry['data']} captions, but the checkpoint uses another vocabulary")


def export(checkpoint: str | os.PathLike, name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Write training checkpoint ``checkpoint`` as the shipped weights of ``name``; returns the file.

    The file holds ``kind``, ``config``, ``model`` (floating tensors in float16),
    ``vocab``, ``train``, ``step`` and ``data`` — no optimiser state — and its
    sha256 replaces ``name``'s line in ``<weights_dir>/registry.txt``
    (``weights_dir`` defaults to ``minidraw/weights/``).

    A run that went on from the weights it replaces (trained with ``init=`` their name or any copy of the file: the
    run records the sha256 of what it started from), or from a training checkpoint file that is still where
    ``init`` names it, is their next stage: ``step`` counts every stage's steps, and ``stages`` lists each stage's
    steps and training settings.
    """
    if name not in MODELS:
        raise UnknownModelError(f"no pretrained model named {name!r}; the names are {', '.join(MODELS)}")
    model, ckpt = load_checkpoint(checkpoint)
    vocab = vocabulary_for(model, ckpt)
    _check_fits(name, model, vocab)
    state = {k: v.detach().half() if v.is_floating_point() else v.detach() for k, v in model.state_dict().items()}
    payload = {"kind": ckpt["kind"], "config": ckpt["config"], "model": state,
               "vocab": None if vocab is None else vocab.to_dict(),
               **{k: ckpt[k] for k in ("train", "step", "data", "init_sha256") if k in ckpt}}
    folder = _dir(weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / MODELS[name]["file"]
    if dest.is_file():                             # the next stage of the weights it replaces, by their content
        before = torch.load(dest, map_location="cpu", weights_only=True)
        origin, this = ckpt.get("init_sha256"), {"step": ckpt.get("step", 0), "train": ckpt.get("train", {})}
        stages = None
        if origin and origin == pooch.file_hash(str(dest), alg="sha256"):        # started from this very file
            stages = [*(before.get("stages") or [{"step": before.get("step", 0), "train": before.get("train", {})}]),
                      this]
        elif origin and origin == before.get("init_sha256") and before.get("stages"):   # the same stage again
            stages = [*before["stages"][:-1], this]
        elif not origin and ckpt.get("train", {}).get("init") == name:                # runs from before hashes
            stages = [*(before.get("stages") or [{"step": before.get("step", 0), "train": before.get("train", {})}]),
                      this]
        if stages:
            payload["stages"], payload["step"] = stages, sum(stage["step"] for stage in stages)
    if "stages" not in payload:                    # went on from a training checkpoint file: its stages, then this
        init = Path(str(ckpt.get("train", {}).get("init") or ""))
        if ckpt.get("init_sha256") and init.is_file() and pooch.file_hash(str(init), alg="sha256") == ckpt["init_sha256"]:
            before = torch.load(init, map_location="cpu", weights_only=True)
            stages = [*(before.get("stages") or [{"step": before.get("step", 0), "train": before.get("train", {})}]),
                      {"step": ckpt.get("step", 0), "train": ckpt.get("train", {})}]
            payload["stages"], payload["step"] = stages, sum(stage["step"] for stage in stages)
    atomic_write(dest, lambda f: torch.save(payload, f))
    line = f"{dest.name} {pooch.file_hash(str(dest), alg='sha256')}\n"
    reg = folder / REGISTRY
    old = reg.read_text().splitlines(keepends=True) if reg.is_file() else [REGISTRY_HEADER]
    kept = [x for x in old if not (x.split() and x.split()[0] == dest.name)]
    atomic_write(reg, lambda f: f.write("".join(kept + [line]).encode()))
    return dest


# ---- which model for a caption ------------------------------------------------------------------
def for_caption(caption: str) -> str:
    """The pretrained model for ``caption``: the first whose vocabulary holds every word
    (MNIST with captions -> ``aligndraw-mnist``, then captioned shapes -> ``aligndraw-shapes``).

    Raises :class:`~minidraw.text.UnknownWordError` (a ``ValueError``) naming the words
    each vocabulary lacks and listing both vocabularies.
    """
    words = tokenize(caption)
    if not words:
        raise EmptyCaptionError(f"the caption {caption!r} has no words; give at least one word")
    picks = {"mnist_captions": "aligndraw-mnist", "shapes": "aligndraw-shapes"}
    titles = {"mnist_captions": "MNIST with captions", "shapes": "captioned shapes"}
    missing = {}
    for data, vocab in VOCABULARIES.items():
        missing[data] = sorted({w for w in words if w not in vocab.content_words})
        if not missing[data]:
            return picks[data]
    lacks = "; ".join(f"{titles[d]} lacks {m}" for d, m in missing.items())
    known = "; ".join(f"{titles[d]}: {' '.join(v.content_words)}" for d, v in VOCABULARIES.items())
    raise UnknownWordError(f"no pretrained model knows every word of {caption!r} ({lacks}). The words they "
                           f"know — {known}")
