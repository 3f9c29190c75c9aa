"""The cycle (ours): caption → picture → caption, and the captioner that reads the pictures back.

Draw a picture from a caption, caption the picture with the image-to-text captioner
(:mod:`minidraw.captioner`), and compare the two captions
(:mod:`minidraw.scoring`)::

    y  ─alignDRAW→  x̂  ─captioner→  ŷ,        score(ŷ, y)

For the closed grammars (MNIST with captions, captioned shapes) the score is
:func:`minidraw.scoring.agreement`: *exact*, the share of pictures whose caption
describes the same scene (wording aside), and *slots*, the share of the scene's facts
(an object and its place, the background) that agree. For MS-COCO it is corpus BLEU-4
(:func:`minidraw.scoring.bleu4`) against the captions the pictures were drawn from. A
perfect drawing scores what the captioner scores on real pictures
(:func:`minidraw.scoring.accuracy`), so read the cycle beside the captioner's own
accuracy: the cycle measures the drawing only as far as the captioner reads well.

This module finds the captioner — a shipped one by name (:data:`SHIPPED_CAPTIONERS`), a
checkpoint, or a model in hand — checks that it reads the data's pictures and writes in
its vocabulary (:func:`check_captioner_fits`), and captions a batch of pictures
(:func:`caption_images`); :func:`minidraw.evaluate.evaluate` scores what comes back.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
import torch

from . import pretrained
from .captioner import Captioner
from .checkpoint import load
from .models import kind_of
from .sample import vocabulary_for
from .text import Vocabulary

SHIPPED_CAPTIONERS = {"MnistCaptions": "captioner-mnist", "ShapesCaptions": "captioner-shapes"}  # data set -> name

# what cycle_captioner takes: a captioner, one with its vocabulary, a shipped name or a checkpoint's path, or None
CaptionerSpec = Union[Captioner, tuple[Captioner, Optional[Vocabulary]], str, os.PathLike, None]


def _captioner_names() -> str:
    """The shipped captioners' names, for error messages."""
    return ", ".join(n for n, m in pretrained.MODELS.items() if m["kind"] == "captioner")


def load_captioner(spec: str | os.PathLike, map_location="cpu") -> tuple[Captioner, Optional[Vocabulary]]:
    """``(captioner, vocabulary)`` from ``spec``: a shipped captioner's name (``captioner-mnist``,
    ``captioner-shapes``: :mod:`minidraw.pretrained`) or a captioner checkpoint's path. A
    ``ValueError`` (or the checkpoint's own error) that says what to give otherwise."""
    names = _captioner_names()
    if str(spec) in pretrained.MODELS:
        try:
            model, vocab = pretrained.load(str(spec), device=map_location, progress=False)
        except (ValueError, RuntimeError) as e:                              # not shipped, corrupt, offline
            raise ValueError(f"cannot load the pretrained captioner {spec}: {e}") from None
    else:
        if not os.path.exists(spec):
            raise ValueError(f"no captioner checkpoint at {spec}, and no pretrained captioner of that name: give a "
                             f"checkpoint of `minidraw train --config captioner-mnist` (or captioner-shapes) or a "
                             f"pretrained name ({names})")
        model, ckpt = load(spec, map_location=map_location)
        vocab = vocabulary_for(model, ckpt) if kind_of(model).name == "captioner" else None
    if kind_of(model).name != "captioner":
        raise ValueError(f"{spec} holds {kind_of(model).words}, not a captioner: give a "
                         f"captioner checkpoint (`minidraw train --config captioner-mnist --out DIR`) or a pretrained "
                         f"captioner ({names})")
    return model.float().to(map_location), vocab


def check_captioner_fits(captioner: Captioner, vocab: Optional[Vocabulary], dataset) -> Vocabulary:
    """The vocabulary to caption ``dataset``'s pictures in; ``ValueError`` unless ``captioner`` reads
    pictures of the data's size and channels and writes captions in the data's vocabulary (``vocab``,
    the captioner's own, when known; else its size must be the data's)."""
    want = tuple(dataset.batch(np.arange(1)).images.shape[1:])              # (C, B, A)
    got = (captioner.cfg.C, captioner.cfg.B, captioner.cfg.A)
    hint = (f"use a captioner trained on the model's data (shipped: {_captioner_names()}; or train one with "
            "`minidraw train --config captioner-mnist`, captioner-shapes)")
    if tuple(want) != got:
        raise ValueError(f"the captioner reads {got[0]}×{got[1]}×{got[2]} (C×B×A) images, the model's data are "
                         f"{want[0]}×{want[1]}×{want[2]}: {hint}")
    words = dataset.vocab
    if vocab is None and captioner.cfg.vocab_size != len(words):
        raise ValueError(f"the captioner writes {captioner.cfg.vocab_size} word ids, the model's data has "
                         f"{len(words)} words: {hint}")
    if vocab is not None and tuple(vocab.words) != tuple(words.words):
        raise ValueError(f"the captioner writes captions in another vocabulary than the model's data: {hint}")
    return words


@torch.no_grad()
def caption_images(captioner: Captioner, vocab: Vocabulary, images: torch.Tensor, width: int = 1,
                   batch_size: int = 250) -> list[str]:
    """``captioner``'s caption of each of ``images (M, C, B, A)`` in [0, 1] (greedy with ``width=1``)."""
    p = next(captioner.parameters())
    out: list[str] = []
    for lo in range(0, len(images), batch_size):
        out += captioner.caption(images[lo:lo + batch_size].to(p.device, p.dtype), vocab, width)
    return out


def cycle_captioner(captioner: CaptionerSpec, test, device) -> tuple[Captioner, Vocabulary]:
    """``(captioner, vocabulary)`` for the cycle measure on the model's data (``test``: its test split):
    ``captioner`` as given (a Captioner, ``(Captioner, Vocabulary)``, a shipped name or a checkpoint's
    path) or, when ``None``, the one shipped for the data, checked to fit the data."""
    if captioner is None:
        name = SHIPPED_CAPTIONERS.get(type(test).__name__)
        if name is None:
            raise ValueError(f"no captioner is shipped for {type(test).__name__}: train one (`minidraw train --preset "
                             "captioner_coco_paper --out DIR`) and give it (--captioner CKPT; in Python, captioner=)")
        try:
            captioner = load_captioner(name, map_location=device)
        except ValueError as e:
            raise ValueError(f"the cycle measure needs a captioner, and the shipped one is not available ({e}); give "
                             f"one with --captioner CKPT (in Python, captioner=), trained with `minidraw train "
                             f"--config {name} --out DIR`") from None
    elif isinstance(captioner, (str, os.PathLike)):
        captioner = load_captioner(captioner, map_location=device)
    model, vocab = captioner if isinstance(captioner, tuple) else (captioner, None)
    if not hasattr(model, "cfg") or kind_of(model).name != "captioner":
        raise ValueError(f"the cycle measure needs a captioner (minidraw.captioner.Captioner), got a "
                         f"{type(model).__name__}")
    return model, check_captioner_fits(model, vocab, test)
