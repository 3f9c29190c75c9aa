"""``minidraw sample``: the options, and the calls into :mod:`minidraw.sample`."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from .. import pretrained
from ..checkpoint import load
from ..errors import UserError
from ..runtime import device
from ..sample import (
    check_request,
    encode_captions,
    load_sharpener,
    max_words_for,
    refuse_non_drawing,
    sample_many,
    save_animation,
    save_grid,
    sharpen,
    vocabulary_for,
)
from .options import non_negative_float, positive_int

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``sample`` options, on ``p`` (the ``sample`` subcommand's parser)."""
    p.description, p.epilog, p.formatter_class = DESCRIPTION, EXAMPLES, argparse.RawDescriptionHelpFormatter
    p.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint written by `minidraw train --out`")
    p.add_argument("--model", metavar="NAME", help="a pretrained model instead: aligndraw-mnist, aligndraw-mnist-paper, "
                                                   "noaligndraw-mnist, "
                                                   "aligndraw-shapes or draw-mnist (default with a caption alone: "
                                                   "the one that knows its words)")
    p.add_argument("--caption", metavar="TEXT", help="what to draw (caption models only), in the model's vocabulary")
    p.add_argument("--n", type=positive_int, default=16, help="how many images (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed draws the same images")
    p.add_argument("--temperature", type=non_negative_float, default=1.0, metavar="T",
                   help="scale of the prior's σ: below 1 tidier, above 1 wilder (default: 1)")
    p.add_argument("--out", default="sample.png", metavar="PNG",
                   help="write the grid of images here (a .png; default: sample.png)")
    p.add_argument("--animation", metavar="GIF", help="also write a GIF of the first image being drawn here")
    p.add_argument("--sharpen", metavar="CKPT", help="sharpen the drawings with this sharpener checkpoint "
                                                     "(`minidraw train --preset sharpen_*`)")
    p.add_argument("--keep-blurry", action="store_true", help="with --sharpen, also write the unsharpened grid "
                                                             "beside --out (NAME_blurry.png)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:1, mps or auto (CUDA, then MPS, then the CPU); default: cpu, where a "
                        "seed draws the same images on every machine")


def _checkpoint_path(args: argparse.Namespace) -> str | Path:
    """``--checkpoint``, or the weights of the pretrained model ``--model`` names or ``--caption`` picks."""
    if args.checkpoint is not None:
        if args.model is not None:
            raise UserError("give --checkpoint or --model, not both")
        return args.checkpoint
    if args.model is None and args.caption is None:
        raise UserError("nothing to draw from: give --checkpoint CKPT, --model NAME (a pretrained model: "
                        f"{', '.join(pretrained.MODELS)}), or a --caption, which picks the pretrained model that "
                        "knows its words")
    try:
        name = args.model if args.model is not None else pretrained.for_caption(args.caption)
        weights = pretrained.path(name)
    except (ValueError, RuntimeError) as e:          # unknown name or words, not shipped, corrupt, offline
        raise UserError(str(e)) from None
    print(f"pretrained model {name}: {pretrained.MODELS[name]['description']} ({weights})")
    return weights


def _check_outputs(out: str, animation: Optional[str]) -> None:
    """Fail before any drawing when an output's format is one we cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    if Path(out).suffix.lower().lstrip(".") not in formats:
        raise UserError(f"--out {out}: give a file name ending in .png (or "
                        f"{', '.join('.' + f for f in sorted(formats))})")
    if animation is not None and Path(animation).suffix.lower() != ".gif":
        raise UserError(f"--animation {animation}: give a file name ending in .gif")


def run(args: argparse.Namespace) -> int:
    """Carry out ``minidraw sample``: 0 on success; user errors propagate (one line, exit status 2)."""
    import matplotlib
    matplotlib.use("Agg")


    _check_outputs(args.out, args.animation)
    if args.keep_blurry and not args.sharpen:
        raise UserError("--keep-blurry goes with --sharpen CKPT")
    dev = device(getattr(args, "device", "cpu"))
    path = _checkpoint_path(args)
    model, ckpt = load(path)                        # its errors name the file and what to do
    refuse_non_drawing(ckpt["kind"], path,
                       sharpener_hint=f"draw with --checkpoint/--model and give the sharpener as --sharpen {path}",
                       captioner_hint=f"caption pictures with `minidraw caption --checkpoint {path} IMAGE.png`, "
                                      "or draw with a drawing model",
                       lapgan_hint=f"measure it with `minidraw evaluate --checkpoint {path} --sharpen SHARPENER`, "
                                   "or draw with minidraw.lapgan.LapGan.generate in Python")
    model.to(dev)
    sharpener = None
    try:
        vocab = vocabulary_for(model, ckpt)
        if args.sharpen:
            sharpener = load_sharpener(args.sharpen, model, vocab, map_location=dev)
        check_request(model, args.caption)
        if args.caption is not None:
            encode_captions(vocab, [args.caption], max_words_for(vocab))  # UnknownWordError, EmptyCaptionError, ...
        blurry, gen = sample_many(model, vocab, args.caption, args.n, args.seed, args.temperature)
    except ImportError as e:                                           # skipthought without its encoder
        raise UserError(str(e)) from None
    images = blurry
    if sharpener is not None:
        images = sharpen(sharpener, vocab, blurry, args.caption, args.seed)
    try:
        if sharpener is not None and args.keep_blurry:
            out = Path(args.out).with_name(Path(args.out).stem + "_blurry" + Path(args.out).suffix)
            print(f"unsharpened: {save_grid(blurry, out, args.caption)}")
        print(f"{args.n} {'sharpened ' if sharpener is not None else ''}image(s): "
              f"{save_grid(images, args.out, args.caption)}")
        if args.animation and gen.write is None:
            print("no animation: this model draws in one step, without attention windows")
        elif args.animation:
            print(f"animation: {save_animation(gen, model.cfg.write_N, args.animation, args.caption)}")
    except OSError as e:                                               # unwritable folder, full disk
        raise UserError(f"cannot write the output: {e}") from None
    return 0
