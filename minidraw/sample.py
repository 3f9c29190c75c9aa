"""Drawing from a trained checkpoint, as the ``minidraw sample`` command does (:mod:`minidraw.cli`).

    minidraw sample --checkpoint runs/aligndraw.pt --caption "the digit 3 is at the top left of the image ." \
        --out samples/grid.png --animation samples/draw.gif
    minidraw sample --caption "the digit 3 is on the left of the digit 7 ." --out grid.png   # a pretrained model

Without ``--checkpoint`` the model is a pretrained one (:mod:`minidraw.pretrained`):
the one ``--model`` names, or the one whose vocabulary holds the caption's words.

The pieces are functions: :func:`vocabulary_for` finds the vocabulary a
checkpoint's captions use, :func:`encode_captions` turns captions into word ids
with errors a user can act on, :func:`sample` draws, reproducibly from a seed, and
:func:`save_grid` / :func:`save_animation` write the grid and the GIF.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Optional, Sequence

import torch
import numpy as np
from torch import nn

from .attention import Window
from .checkpoint import load
from .configs import PRESETS
from .data import mnist_captions, shapes_grammar, shapes_scene
from .errors import UserError
from .models import IMAGE_TO_CAPTION, KINDS, SHARPENS, kind_of
from .outputs import Generated
from .runtime import evaluating
from .text import FrozenSentenceEncoder, Vocabulary, pad, tokenize

GENEROUS_MAX_WORDS = 64  # longest caption for a vocabulary with no known caption length (e.g. MS-COCO's)


# ---- the caption's words ---------------------------------------------------------------
def takes_caption(model: nn.Module) -> bool:
    """Whether ``model`` reads or writes captions (every kind but the unconditional DRAW)."""
    return kind_of(model).takes_caption


VOCABULARIES = {"mnist_captions": mnist_captions.VOCAB, "shapes": shapes_grammar.VOCAB}   # the closed ones, by data set
# the words that name what is drawn, and a caption that uses them, for each closed vocabulary
NAMES = {"mnist_captions": (tuple(str(d) for d in range(10)), mnist_captions.caption_text(0, 3, 7)),
         "shapes": (shapes_scene.SHAPES, shapes_grammar.EXAMPLES[0])}
MAX_GRID_PIXELS = 200_000_000   # the most pixels a grid of samples may have (one float32 array, then a PNG)
CHUNK = 256                     # samples drawn at a time


def vocabulary_for(model: nn.Module, ckpt: dict) -> Optional[Vocabulary]:
    """The vocabulary ``model``'s captions use; ``None`` for a model that takes no caption.

    In order: the checkpoint's own ``ckpt["vocab"]`` (a :meth:`Vocabulary.to_dict`),
    the data set its training preset names ("shapes" or "mnist"), and last the
    model's ``vocab_size`` (23: MNIST with captions, 31: captioned shapes).
    Raises ``ValueError`` when none of these settles it or the vocabulary found
    does not match the model's embedding.
    """
    if not takes_caption(model):
        return None
    size = model.cfg.vocab_size
    known = VOCABULARIES
    if ckpt.get("vocab") is not None:
        try:
            vocab, source = Vocabulary.from_dict(ckpt["vocab"]), "the checkpoint's vocabulary"
        except (KeyError, TypeError) as e:
            raise ValueError(f"the checkpoint's vocabulary is malformed ({type(e).__name__}: {e})") from e
    else:
        name = str((ckpt.get("train") or {}).get("preset", "") or "")
        data = PRESETS[name].data if name in PRESETS else None
        if data is None:                                            # MS-COCO's vocabulary is built from its corpus
            data = next((k for k, v in known.items() if len(v) == size), None)
        if data not in known:
            raise ValueError(f"the checkpoint stores no vocabulary, and neither its preset ({name or 'unknown'}) "
                             f"nor its vocab_size ({size}) names a known data set; save the model with its "
                             "vocabulary (checkpoint key 'vocab')")
        vocab, source = known[data], f"the {data} vocabulary"
    if len(vocab) != size:
        raise ValueError(f"{source} has {len(vocab)} words but the model embeds {size}; "
                         "the checkpoint does not fit its vocabulary")
    return vocab


def max_words_for(vocab: Vocabulary) -> int:
    """The longest caption worth giving: 12 words for MNIST with captions, 18 for shapes, else 64."""
    if vocab == mnist_captions.VOCAB:
        return max(len(tokenize(mnist_captions.caption_text(t, 0, 1)))              # 12
                   for t in range(len(mnist_captions.TEMPLATES)))
    if vocab == shapes_grammar.VOCAB:
        return shapes_grammar.MAX_LEN                                                    # 18
    return GENEROUS_MAX_WORDS


def encode_captions(vocab: Vocabulary, texts: Sequence[str], max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Word ids ``(M, L)`` padded with 0 to the longest caption, and lengths ``(M,)``.

    Raises :class:`~minidraw.text.EmptyCaptionError` for a caption with no words,
    :class:`~minidraw.text.UnknownWordError` for a word outside a closed
    vocabulary (naming it and listing the vocabulary), and ``ValueError`` for a
    caption longer than ``max_words``.
    """
    encoded = [vocab.encode(t) for t in texts]                                   # the vocabulary's own errors
    for text, ids in zip(texts, encoded):
        if len(ids) > max_words:
            raise ValueError(f"the caption {text!r} has {len(ids)} words; this model's captions have at most "
                             f"{max_words} words")
    data = next((k for k, v in VOCABULARIES.items() if v == vocab), None)
    if data is not None:                                                         # a caption must name something
        names, example = NAMES[data]
        for text in texts:
            if not set(tokenize(text)) & set(names):
                raise ValueError(f"the caption {text!r} names nothing to draw: it needs one of "
                                 f"{' '.join(names)}, e.g. {example!r}")
    return pad(encoded)                                                          # (M, L), (M,)


# ---- drawing -----------------------------------------------------------------------------
def refuse_non_drawing(kind: str, path, sharpener_hint: str, captioner_hint: str,
                       lapgan_hint: Optional[str] = None) -> None:
    """One clear :class:`~minidraw.errors.UserError` when the checkpoint at ``path`` (of ``kind``) is a
    sharpener or a captioner, not a drawing model — or the LAPGAN baseline, where the command cannot take
    it (``lapgan_hint`` given); each hint says how the calling command takes that kind."""
    hints = {"sharpener": sharpener_hint, "captioner": captioner_hint, "lapgan": lapgan_hint}
    if hints.get(kind):
        what = "not a drawing model" if kind != "lapgan" else "not one this command draws with"
        raise UserError(f"{path} is {KINDS[kind].words}, {what}: {hints[kind]}")


def check_request(model: nn.Module, caption: Optional[str]) -> None:
    """``ValueError`` unless ``model`` draws (not a sharpener or a captioner) and a caption is given exactly
    when it draws from one."""
    kind = kind_of(model)
    if kind.role in (IMAGE_TO_CAPTION, SHARPENS):
        raise ValueError(f"this model is {kind.words}, not a drawing model: draw with alignDRAW, DRAW or a baseline")
    if takes_caption(model) and caption is None:
        raise ValueError(f"this model ({getattr(model.cfg, 'variant', type(model).__name__)}) draws from a "
                         "caption; give one with --caption")
    if not takes_caption(model) and caption is not None:
        raise ValueError("this model is unconditional and takes no caption; leave --caption out")


@torch.no_grad()
def sample(model: nn.Module, vocab: Optional[Vocabulary], caption: Optional[str], n: int, seed: int,
           temperature: float = 1.0) -> Generated:
    """``n`` drawings of ``caption`` (or ``n`` unconditional ones), the same for the same ``seed``.

    ``vocab`` is :func:`vocabulary_for`'s answer; ``temperature`` scales the prior's σ. The model
    draws in eval mode; its own mode and the caller's random state are left as they were.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= temperature < math.inf:
        raise ValueError(f"temperature scales the prior's σ: give a finite number, 0 or more, got {temperature}")
    check_request(model, caption)
    if caption is None:
        with evaluating(model, seed):
            return model.generate(n, temperature=temperature)
    if vocab is None:
        raise ValueError("a caption model needs a vocabulary")
    ids, lengths = encode_captions(vocab, [caption], max_words_for(vocab))     # (1, L), (1,)
    device = next(model.parameters()).device
    ids, lengths = ids.expand(n, -1).to(device), lengths.expand(n).to(device)  # (n, L), (n,)
    sentence = None
    if getattr(model.cfg, "variant", None) == "skipthought" and model.cfg.sentence_encoder == "external":
        sentence = FrozenSentenceEncoder()([caption]).to(device).expand(n, -1)  # (n, sentence_size)
        if sentence.shape[1] != model.cfg.sentence_size:
            raise ValueError(f"the sentence encoder gives {sentence.shape[1]} numbers, the model was trained "
                             f"on {model.cfg.sentence_size}")
    with evaluating(model, seed):
        return model.generate(ids, lengths, sentence, temperature=temperature)


@torch.no_grad()
def sample_many(model: nn.Module, vocab: Optional[Vocabulary], caption: Optional[str], n: int, seed: int,
                temperature: float = 1.0) -> tuple[torch.Tensor, Generated]:
    """``n`` drawings as :func:`sample` makes them, drawn :data:`CHUNK` at a time so that ``n`` may be large: the
    images ``(n, C, B, A)`` on the CPU, and the first chunk's :class:`Generated` (its steps, for an animation).
    A grid of more than :data:`MAX_GRID_PIXELS` pixels is refused before anything is drawn. Up to ``CHUNK``
    drawings are :func:`sample`'s exactly; chunk k is drawn from seed ``seed + k``."""
    cfg = model.cfg
    if n * cfg.B * cfg.A > MAX_GRID_PIXELS:
        raise ValueError(f"{n:,} drawings of {cfg.B}×{cfg.A} pixels would not fit in one grid; give n at most "
                         f"{MAX_GRID_PIXELS // (cfg.B * cfg.A):,}")
    first, images = None, []
    for k, start in enumerate(range(0, n, CHUNK)):
        gen = sample(model, vocab, caption, min(CHUNK, n - start), seed + k, temperature)
        first = gen if first is None else first
        images.append(gen.images.float().cpu())
    return torch.cat(images), first


@torch.no_grad()
def sharpen(sharpener: nn.Module, vocab: Vocabulary, images: torch.Tensor, captions: str | Sequence[str],
            seed: int = 0) -> torch.Tensor:
    """``images (M, C, B, A)`` sharpened by a :class:`~minidraw.sharpen.Sharpener`, each given its caption
    (one caption for all, or one per image), reproducibly from ``seed``. ``vocab``: the vocabulary
    the sharpener was trained with."""
    if kind_of(sharpener).role != SHARPENS:
        raise ValueError(f"a sharpener is needed (a checkpoint of `minidraw train --preset sharpen_*`), got a "
                         f"{type(sharpener).__name__}")
    texts = [captions] * len(images) if isinstance(captions, str) else list(captions)
    if len(texts) != len(images):
        raise ValueError(f"{len(images)} images but {len(texts)} captions: give one caption, or one per image")
    ids, lengths = encode_captions(vocab, texts, max_words_for(vocab))
    with evaluating(sharpener, seed) as dev:
        return sharpener.sharpen(images.to(dev), ids.to(dev), lengths.to(dev))


def check_sharpener_fits(sharpener: nn.Module, sharpener_vocab: Optional[Vocabulary], model: nn.Module,
                         vocab: Optional[Vocabulary]) -> None:
    """``ValueError`` unless ``sharpener`` can sharpen ``model``'s drawings: same image size and channels,
    and the same vocabulary for the captions."""
    kind = kind_of(sharpener)
    if kind.role != SHARPENS:
        held = kind.words if kind.role == IMAGE_TO_CAPTION else f"a {type(sharpener).__name__} drawing model"
        raise ValueError(f"--sharpen needs a sharpener checkpoint (`minidraw train --preset sharpen_*`), but this "
                         f"one holds {held}")
    want = tuple(getattr(model.cfg, k) for k in ("C", "B", "A"))
    got = tuple(getattr(sharpener.cfg, k) for k in ("C", "B", "A"))
    if want != got:
        raise ValueError(f"the sharpener works on {got[0]}×{got[1]}×{got[2]} (C×B×A) images, the model draws "
                         f"{want[0]}×{want[1]}×{want[2]}: use a sharpener trained on the model's data")
    if vocab is None or sharpener_vocab is None or vocab.words != sharpener_vocab.words:
        raise ValueError("the sharpener reads captions in another vocabulary than the model's: use a sharpener "
                         "trained on the model's data (and a caption model)")


def load_sharpener(path, model: nn.Module, vocab: Optional[Vocabulary], map_location="cpu") -> nn.Module:
    """The sharpener checkpoint at ``path``, checked to fit ``model``'s drawings and ``vocab``
    (:func:`check_sharpener_fits`: a ``ValueError`` that says why not), in float32 on ``map_location``."""
    sharpener, ckpt = load(path, map_location=map_location)
    words = ckpt.get("vocab")
    check_sharpener_fits(sharpener, Vocabulary.from_dict(words) if words else None, model, vocab)
    return sharpener.float().to(map_location)


def window_of(window: Window, i: int) -> Window:
    """Example ``i``'s window: fields ``(M, T)`` -> ``(T,)``."""
    return Window(**{k: v[i].detach().cpu() for k, v in vars(window).items()})


# ---- writing the drawings --------------------------------------------------------------------
def grid_array(images: torch.Tensor, ncols: int, gap: int = 2) -> np.ndarray:
    """``images (M, C, B, A)`` in [0, 1] tiled ``ncols`` to a row with ``gap`` white pixels between them:
    one ``(H, W, 3)`` float array (grey pictures as RGB)."""
    M, C, B, A = images.shape
    rows = (M + ncols - 1) // ncols
    x = images.detach().float().cpu().clamp(0, 1).expand(-1, 3, -1, -1) if C == 1 else images.float().cpu()
    grid = torch.ones(3, rows * (B + gap) + gap, ncols * (A + gap) + gap)
    for k in range(M):
        r, c = divmod(k, ncols)
        grid[:, gap + r * (B + gap): gap + r * (B + gap) + B, gap + c * (A + gap): gap + c * (A + gap) + A] = x[k]
    return grid.permute(1, 2, 0).numpy()                                         # (H, W, 3)


def save_grid(images: torch.Tensor, out: str | Path, caption: Optional[str] = None,
              ncols: Optional[int] = None) -> Path:
    """Write ``images (M, C, B, A)`` as one grid PNG (``caption`` as its title): one image array, drawn in one
    ``imshow`` however many there are; returns the path. ``ncols``: 4, or about √M for more than 16."""
    from matplotlib.figure import Figure
    n = len(images)
    ncols = ncols or (min(n, 4) if n <= 16 else math.ceil(math.sqrt(n)))
    grid = grid_array(images, ncols)
    scale = max(1, min(4, 640 // grid.shape[1]))                                 # small grids drawn larger
    title = [] if caption is None else textwrap.wrap(caption, 60)
    top = 0.25 * len(title) + 0.1 * bool(title)                                  # inches for the title
    width, height = grid.shape[1] * scale / 100, grid.shape[0] * scale / 100
    fig = Figure(figsize=(width, height + top), dpi=100)
    ax = fig.add_axes((0, 0, 1, height / (height + top)))
    ax.imshow(grid, interpolation="nearest")
    ax.axis("off")
    if title:
        fig.text(0.5, 1 - 0.05 * top / (height + top), "\n".join(title), ha="center", va="top", fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def save_animation(gen: Generated, write_N: int, out: str | Path, caption: Optional[str] = None,
                   i: int = 0) -> Path:
    """Write a GIF of drawing ``i`` being drawn: the canvas after each step, the write window boxed
    and, for alignDRAW, the caption's words shaded by α. ``ValueError`` for a one-step model."""
    from matplotlib.animation import PillowWriter

    from . import viz
    if gen.write is None:
        raise ValueError("this model draws in one step, without attention windows: there is nothing to animate")
    words = tokenize(caption) if caption is not None else None
    alpha = None if gen.alpha is None else gen.alpha[i].cpu()                      # (T, L)
    anim = viz.animate_drawing(gen.canvases[:, i].cpu(), window_of(gen.write, i), write_N,
                               words=words, alpha=alpha, interval=200)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    anim.save(out, writer=PillowWriter(fps=5))
    return out
