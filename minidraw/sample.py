"""Drawing from a trained checkpoint: the ``minidraw sample`` command.

    minidraw sample --checkpoint runs/aligndraw.pt --caption "the digit 3 is at the top left of the image ." \
        --out samples/grid.png --animation samples/draw.gif
    minidraw sample --caption "the digit 3 is on the left of the digit 7 ." --out grid.png   # a pretrained model

Without ``--checkpoint`` the model is a pretrained one (:mod:`minidraw.pretrained`):
the one ``--model`` names, or the one whose vocabulary holds the caption's words.

The pieces are functions too: :func:`vocabulary_for` finds the vocabulary a
checkpoint's captions use, :func:`encode_captions` turns captions into word ids
with errors a user can act on, and :func:`sample` draws, reproducibly from a seed.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from .attention import Window
from .draw import CaptionDraw, Generated
from .runtime import evaluating
from .text import Vocabulary, pad, tokenize

GENEROUS_MAX_WORDS = 64  # longest caption for a vocabulary with no known caption length (e.g. MS-COCO's)


# ---- the caption's words ---------------------------------------------------------------
def takes_caption(model: nn.Module) -> bool:
    """Whether ``model`` draws from a caption (every CaptionDraw variant but ``draw``; the baselines)."""
    from .baselines import ConditionalVAE
    return isinstance(model, ConditionalVAE) or (isinstance(model, CaptionDraw) and model.cfg.variant != "draw")


def _known_vocabularies() -> dict[str, Vocabulary]:
    from .data import mnist_captions, shapes
    return {"mnist": mnist_captions.VOCAB, "shapes": shapes.VOCAB}


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
    known = _known_vocabularies()
    if ckpt.get("vocab") is not None:
        try:
            vocab, source = Vocabulary.from_dict(ckpt["vocab"]), "the checkpoint's vocabulary"
        except (KeyError, TypeError) as e:
            raise ValueError(f"the checkpoint's vocabulary is malformed ({type(e).__name__}: {e})") from e
    else:
        name = str((ckpt.get("train") or {}).get("preset", "") or "")
        data = next((k for k in ("shapes", "mnist") if k in name), None)
        if data is None and "coco" not in name:                     # MS-COCO's vocabulary is built from its corpus
            data = next((k for k, v in known.items() if len(v) == size), None)
        if data is None:
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
    from .data import mnist_captions, shapes
    if vocab == mnist_captions.VOCAB:
        return max(len(tokenize(mnist_captions.caption_text(t, 0, 1)))              # 12
                   for t in range(len(mnist_captions.TEMPLATES)))
    if vocab == shapes.VOCAB:
        return shapes.MAX_LEN                                                    # 18
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
    return pad(encoded)                                                          # (M, L), (M,)


# ---- drawing -----------------------------------------------------------------------------
def check_request(model: nn.Module, caption: Optional[str]) -> None:
    """``ValueError`` unless a caption is given exactly when ``model`` draws from one."""
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
    check_request(model, caption)
    if caption is None:
        with evaluating(model, seed):
            if isinstance(model, CaptionDraw):
                return model.generate(M=n, temperature=temperature)
            return model.generate(n, temperature=temperature)
    if vocab is None:
        raise ValueError("a caption model needs a vocabulary")
    ids, lengths = encode_captions(vocab, [caption], max_words_for(vocab))     # (1, L), (1,)
    device = next(model.parameters()).device
    ids, lengths = ids.expand(n, -1).to(device), lengths.expand(n).to(device)  # (n, L), (n,)
    sentence = None
    if getattr(model.cfg, "variant", None) == "skipthought" and model.cfg.sentence_encoder == "external":
        from .text import FrozenSentenceEncoder
        sentence = FrozenSentenceEncoder()([caption]).to(device).expand(n, -1)  # (n, sentence_size)
        if sentence.shape[1] != model.cfg.sentence_size:
            raise ValueError(f"the sentence encoder gives {sentence.shape[1]} numbers, the model was trained "
                             f"on {model.cfg.sentence_size}")
    with evaluating(model, seed):
        return model.generate(ids, lengths, sentence, temperature=temperature)


def window_of(window: Window, i: int) -> Window:
    """Example ``i``'s window: fields ``(M, T)`` -> ``(T,)``."""
    return Window(**{k: v[i].detach().cpu() for k, v in vars(window).items()})


# ---- command line --------------------------------------------------------------------------
DESCRIPTION = """Draw images from a trained minidraw checkpoint or a pretrained model.

A caption model (alignDRAW and its variants) draws --n images of one caption;
an unconditional DRAW draws --n images from its prior. The same checkpoint,
caption and seed always give the same images. --animation writes a GIF of the
first image being drawn: the write window boxed in red and, for alignDRAW, the
caption underneath with each word shaded by how much the model attends to it.

Without --checkpoint, a pretrained model draws: the one --model names, or, for
a caption alone, the one whose vocabulary holds its words (MNIST with captions,
then captioned shapes); it is downloaded once when the package does not hold it.

A caption must use the model's vocabulary (MNIST with captions or captioned
shapes): a word outside it is an error that lists the words there are."""

EXAMPLES = """examples:
  minidraw sample --caption "the digit 3 is on the left of the digit 7 ." --out samples/grid.png   # pretrained
  minidraw sample --model draw-mnist --n 16 --out samples/digits.png
  minidraw sample --checkpoint runs/aligndraw.pt \\
      --caption "the digit 3 is at the top left of the image ." --out samples/grid.png
  minidraw sample --checkpoint runs/shapes.pt --caption "a large red circle is at the top left on a white background ." \\
      --n 8 --seed 3 --out samples/red.png --animation samples/red.gif
  minidraw sample --checkpoint runs/draw_small.pt --n 16 --out samples/digits.png
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``sample`` options, on ``p`` (a parser of its own or a subcommand's)."""
    p.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint written by `minidraw train --out`")
    p.add_argument("--model", metavar="NAME", help="a pretrained model instead: aligndraw-mnist, noaligndraw-mnist, "
                                                   "aligndraw-shapes or draw-mnist (default with a caption alone: "
                                                   "the one that knows its words)")
    p.add_argument("--caption", metavar="TEXT", help="what to draw (caption models only), in the model's vocabulary")
    p.add_argument("--n", type=_positive_int, default=16, help="how many images (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed draws the same images")
    p.add_argument("--temperature", type=_non_negative_float, default=1.0, metavar="T",
                   help="scale of the prior's σ: below 1 tidier, above 1 wilder (default: 1)")
    p.add_argument("--out", default="sample.png", metavar="PNG",
                   help="write the grid of images here (a .png; default: sample.png)")
    p.add_argument("--animation", metavar="GIF", help="also write a GIF of the first image being drawn here")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:1, mps or auto (CUDA, then MPS, then the CPU); default: cpu, where a "
                        "seed draws the same images on every machine")


def build_parser(prog: str = "minidraw sample") -> argparse.ArgumentParser:
    """A stand-alone parser for the ``sample`` command."""
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``sample`` to a top-level CLI's ``parser.add_subparsers()``; ``args.func`` is :func:`run`."""
    p = subparsers.add_parser("sample", help="draw images from a checkpoint or a pretrained model",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _fail(message) -> None:
    """A user error: ``minidraw sample`` reports it in one line and exits with status 2 (no traceback)."""
    from .errors import UserError
    raise UserError(str(message))


def _load(path: str):
    from .checkpoint import load
    return load(path)       # its errors name the file and what to do


def _checkpoint_path(args: argparse.Namespace) -> str | Path:
    """``--checkpoint``, or the weights of the pretrained model ``--model`` names or ``--caption`` picks."""
    from . import pretrained
    if args.checkpoint is not None:
        if args.model is not None:
            _fail("give --checkpoint or --model, not both")
        return args.checkpoint
    if args.model is None and args.caption is None:
        _fail("nothing to draw from: give --checkpoint CKPT, --model NAME (a pretrained model: "
              f"{', '.join(pretrained.MODELS)}), or a --caption, which picks the pretrained model that knows its words")
    try:
        name = args.model if args.model is not None else pretrained.for_caption(args.caption)
        weights = pretrained.path(name)
    except (ValueError, RuntimeError) as e:          # unknown name or words, not shipped, corrupt, offline
        _fail(e)
    print(f"pretrained model {name}: {pretrained.MODELS[name]['description']} ({weights})")
    return weights


def _check_outputs(out: str, animation: Optional[str]) -> None:
    """Fail before any drawing when an output's format is one we cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    if Path(out).suffix.lower().lstrip(".") not in formats:
        _fail(f"--out {out}: give a file name ending in .png (or {', '.join('.' + f for f in sorted(formats))})")
    if animation is not None and Path(animation).suffix.lower() != ".gif":
        _fail(f"--animation {animation}: give a file name ending in .gif")


def run(args: argparse.Namespace) -> int:
    """Carry out ``sample`` with parsed ``args``: 0 on success; user errors exit with status 2."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import PillowWriter

    from . import viz

    _check_outputs(args.out, args.animation)
    from .runtime import device
    dev = device(getattr(args, "device", "cpu"))
    model, ckpt = _load(_checkpoint_path(args))
    model.to(dev)
    try:
        vocab = vocabulary_for(model, ckpt)
        check_request(model, args.caption)
        if args.caption is not None:
            encode_captions(vocab, [args.caption], max_words_for(vocab))  # UnknownWordError, EmptyCaptionError, ...
    except ValueError as e:
        _fail(str(e))
    try:
        gen = sample(model, vocab, args.caption, args.n, args.seed, args.temperature)
    except (ImportError, ValueError) as e:                             # skipthought: no encoder, wrong size
        _fail(str(e))
    try:
        title = None if args.caption is None else "\n".join(textwrap.wrap(args.caption, 60))
        fig = viz.image_grid(gen.images.cpu(), ncols=min(args.n, 4), title=title)  # one caption: the title
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
        plt.close(fig)
        print(f"{args.n} image(s): {out}")
        if args.animation and gen.write is None:
            print("no animation: this model draws in one step, without attention windows")
        elif args.animation:
            words = tokenize(args.caption) if args.caption is not None else None
            alpha = None if gen.alpha is None else gen.alpha[0].cpu()             # (T, L)
            anim = viz.animate_drawing(gen.canvases[:, 0].cpu(), window_of(gen.write, 0), model.cfg.write_N,
                                       words=words, alpha=alpha, interval=200)
            path = Path(args.animation)
            path.parent.mkdir(parents=True, exist_ok=True)
            anim.save(path, writer=PillowWriter(fps=5))
            print(f"animation: {path}")
    except OSError as e:                                               # unwritable folder, full disk
        _fail(f"cannot write the output: {e}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m minidraw.sample [options]``: parse ``argv`` and :func:`run`; a user error is one
    line on stderr and exit status 2."""
    from .errors import guarded
    return guarded("sample", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
