"""``minidraw train``: the options, and the call into :func:`minidraw.train.run`."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..checkpoint import read, upgrade
from ..configs import PRESETS, load_config, recipes, resume_config
from ..rundir import CHECKPOINT
from ..train import run as train_run

EXAMPLES = """examples:
  minidraw train --preset draw_mnist_small --set lr=3e-3 --out runs/draw --max-minutes 3
  minidraw train --preset aligndraw_mnist_small --set lr=3e-3 model.variant=noalign --out runs/noalign
  minidraw train --preset convvae_mnist_small --out runs/convvae   # a baseline: conditional conv-deconv VAE
  minidraw train --config my.toml --out runs/mine          # TOML: top-level settings, [model] table
  minidraw train --config aligndraw-mnist --out runs/long  # a shipped model's recipe (minidraw/recipes)
  minidraw train --out runs/draw                           # resumes runs/draw/checkpoint.pt
  torchrun --nproc_per_node 4 -m minidraw train --preset aligndraw_coco_paper --out runs/coco

presets: """ + ", ".join(sorted(PRESETS))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Train a model (DRAW, alignDRAW, a variant or a baseline VAE); resumes from OUT/checkpoint.pt."
    p.epilog = EXAMPLES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--preset", help="a named model configuration (default: draw_mnist_small)")
    p.add_argument("--config", help="a TOML file of training settings, with a [model] table, or a recipe's name: "
                   + ", ".join(recipes()))
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override settings: lr=3e-3 batch_size=100 model.variant=noalign ...")
    p.add_argument("--out", required=True, help="run directory: checkpoint.pt, metrics.jsonl, metrics.png")
    p.add_argument("--max-minutes", type=float, help="stop (and checkpoint) after this many minutes")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Carry out ``minidraw train``; user errors propagate (:func:`minidraw.cli.main` reports them in one line)."""
    sets = list(args.set)
    if args.max_minutes is not None:
        sets.append(f"max_minutes={args.max_minutes}")
    if args.max_steps is not None:
        sets.append(f"max_steps={args.max_steps}")
    resume = Path(args.out) / CHECKPOINT
    if not args.preset and not args.config and resume.exists():   # resume with the saved settings
        try:
            cfg = resume_config(upgrade(read(resume), str(resume)).get("train"), sets)
        except ValueError as e:
            raise ValueError(f"{resume}: {e}") from None
    else:
        cfg = load_config(args.preset, args.config, sets)
    model, log = train_run(cfg, args.out, progress=not args.quiet)
    tests = [r for r in log if "test_bound" in r]
    if tests and int(os.environ.get("RANK", "0")) == 0:
        print(f"step {tests[-1]['step']}: test −L = {tests[-1]['test_bound']:.2f} ± {tests[-1]['test_se']:.2f} "
              f"nats per image; checkpoint {resume}")
    return 0
