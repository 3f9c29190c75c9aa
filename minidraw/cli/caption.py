"""``minidraw caption``: the options, and the calls into :mod:`minidraw.captioner` and :mod:`minidraw.images`."""
from __future__ import annotations

import argparse
import sys

from .. import pretrained
from ..checkpoint import load
from ..errors import UserError
from ..images import load_images
from ..models import KINDS
from ..runtime import device
from ..sample import vocabulary_for
from .options import positive_int

DESCRIPTION = """Write a caption for each picture with a trained captioner (image -> text,
"Show, Attend and Tell": minidraw.captioner).

Each IMAGE (PNG or JPEG; grey, RGB, RGBA or palette; any size) is converted to the
captioner's channels (grey -> RGB repeats the grey; RGB -> grey is the luminance),
resized to its size (bilinear) and captioned. One line per image is printed:

    IMAGE<TAB>caption

--beam K keeps the K most likely partial captions (default 1: the most likely
word at every step)."""

EXAMPLES = """examples:
  minidraw caption --model captioner-mnist digits.png
  minidraw caption --checkpoint runs/captioner-shapes/checkpoint.pt --beam 3 a.png b.jpg
  minidraw caption --model captioner-shapes samples/*.png > captions.tsv
"""

BATCH = 100   # images captioned at a time


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``caption`` options, on ``p`` (the ``caption`` subcommand's parser)."""
    p.description, p.epilog, p.formatter_class = DESCRIPTION, EXAMPLES, argparse.RawDescriptionHelpFormatter
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files to caption")
    p.add_argument("--checkpoint", metavar="CKPT", help="a captioner checkpoint written by `minidraw train --out` "
                                                        "(--config captioner-mnist or captioner-shapes)")
    p.add_argument("--model", metavar="NAME", help="a pretrained captioner instead: captioner-mnist or "
                                                   "captioner-shapes")
    p.add_argument("--beam", type=positive_int, default=1, metavar="K",
                   help="beam width (default: 1, greedy decoding)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps or auto (default: cpu)")


def _checkpoint_path(args: argparse.Namespace):
    """``--checkpoint``, or the weights of the pretrained model ``--model`` names."""
    if args.checkpoint is not None and args.model is not None:
        raise UserError("give --checkpoint or --model, not both")
    if args.checkpoint is not None:
        return args.checkpoint
    captioners = [n for n, m in pretrained.MODELS.items() if m["kind"] == "captioner"]
    if args.model is None:
        raise UserError(f"no captioner: give --checkpoint CKPT or --model NAME (a pretrained captioner: "
                        f"{', '.join(captioners)})")
    try:
        weights = pretrained.path(args.model)
    except (ValueError, RuntimeError) as e:          # unknown name, not shipped, corrupt, offline
        raise UserError(str(e)) from None
    print(f"pretrained model {args.model}: {pretrained.MODELS[args.model]['description']} ({weights})",
          file=sys.stderr)                           # stdout holds only the captions
    return weights


def run(args: argparse.Namespace) -> int:
    """Carry out ``minidraw caption``: 0 on success; user errors propagate (one line, exit status 2)."""

    dev = device(args.device)
    path = _checkpoint_path(args)
    model, ckpt = load(path)                        # its errors name the file and what to do
    if ckpt["kind"] != "captioner":
        raise UserError(f"{path} is {KINDS[ckpt['kind']].words if ckpt['kind'] in KINDS else repr(ckpt['kind'])}, not a captioner: give a "
                        "captioner checkpoint (`minidraw train --config captioner-mnist --out DIR`) or --model "
                        "captioner-mnist / captioner-shapes")
    vocab = vocabulary_for(model, ckpt)             # ValueError when the checkpoint does not fit its vocabulary
    cfg = model.cfg
    images = load_images(args.images, cfg.C, cfg.B, cfg.A)   # every file read before any caption is written
    model = model.float().to(dev)
    for lo in range(0, len(images), BATCH):
        said = model.caption(images[lo:lo + BATCH].to(dev), vocab, width=args.beam)
        for name, text in zip(args.images[lo:lo + BATCH], said):
            print(f"{name}\t{text}")
    return 0
