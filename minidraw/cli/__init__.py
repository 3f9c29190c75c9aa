"""The ``minidraw`` command (also ``python -m minidraw``): the one place that registers every
subcommand. Each subcommand's options and its call into the library live beside it
(``cli/train.py``, ``cli/sample.py``, ``cli/caption.py``, ``cli/evaluate.py``, ``cli/prepare.py``); the library
modules themselves expose functions and know nothing of argparse.

    minidraw train   --preset NAME [--config FILE] [--set key=value ...] --out DIR [--max-minutes M]
    minidraw sample  [--checkpoint CKPT | --model NAME] --caption "..." [--n 16] --out grid.png [--animation drawing.gif]
    minidraw caption [--checkpoint CKPT | --model NAME] [--beam K] image.png [more.png ...]
    minidraw evaluate --checkpoint CKPT [--metrics bound,iwae,retrieval,ssi,fidelity,cycle] [--captioner CKPT]
                      [--json out.json]
    minidraw prepare mnist|coco|shapes ...

``minidraw COMMAND --help`` shows each command's options and examples.
"""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import caption, evaluate, prepare, sample, train
    p = argparse.ArgumentParser(prog="minidraw", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, help_ in (
            ("train", train, "train a model; resumes from OUT/checkpoint.pt"),
            ("sample", sample, "draw images from a checkpoint or a pretrained model"),
            ("caption", caption, "write a caption for each picture with a captioner (image to text)"),
            ("evaluate", evaluate, "evaluate a checkpoint: bound, IWAE, retrieval, SSI, fidelity, cycle")):
        q = sub.add_parser(name, help=help_)
        module.add_arguments(q)
        q.set_defaults(func=module.run, command_name=name)
    prep = sub.add_parser("prepare", help="download and prepare data (mnist, coco, shapes)")
    kinds = prep.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, (add, run) in prepare.COMMANDS.items():
        q = kinds.add_parser(name, help=f"prepare {name}")
        add(q)
        q.set_defaults(func=run, command_name=f"prepare {name}")
    return p


def main(argv=None) -> int:
    """Run one command. Every command shares one error path (:mod:`minidraw.errors`): a problem
    the user can fix is one line on stderr, naming it and the fix, and exit status 2."""
    from ..errors import guarded
    args = build_parser().parse_args(argv)
    return guarded(getattr(args, "command_name", args.command), args.func, args)


if __name__ == "__main__":
    sys.exit(main())
