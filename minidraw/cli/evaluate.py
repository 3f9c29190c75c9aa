"""``minidraw evaluate``: the options, and the call into :func:`minidraw.evaluate.evaluate`."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..checkpoint import load
from ..cycle import load_captioner
from ..errors import UserError
from ..evaluate import (DEFAULT_METRICS, METRICS, NO_BOUND_METRICS, Sizes, describe_splits, evaluate, markdown_table,
                        splits_for)
from ..models import kind_of
from ..runtime import device as pick_device
from ..sample import load_sharpener, refuse_non_drawing, vocabulary_for
from .options import positive_int

EXAMPLES = """examples:
  minidraw evaluate --checkpoint runs/align/checkpoint.pt
  minidraw evaluate --checkpoint runs/align/checkpoint.pt --metrics bound,retrieval --json align.json
  minidraw evaluate --checkpoint runs/coco/checkpoint.pt --data data/coco --queries 1000 --device cuda
  minidraw evaluate --checkpoint runs/align/checkpoint.pt --metrics fidelity,cycle --captioner captioner-mnist
  minidraw evaluate --checkpoint runs/align/checkpoint.pt --captioner runs/captioner/checkpoint.pt  # all + cycle
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Evaluate a checkpoint on its data: the bound (train/test), IWAE, retrieval R@K and "
                     "median rank, SSI, caption fidelity (seen / held-out compositions), and the cycle: the "
                     "drawings captioned by an image-to-text captioner, scored against the captions they were "
                     "drawn from (scene agreement; BLEU-4 for MS-COCO, which needs `pip install sacrebleu`).")
    p.epilog, p.formatter_class = EXAMPLES, argparse.RawDescriptionHelpFormatter
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by `minidraw train`")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated, from {','.join(METRICS)} (default: {','.join(DEFAULT_METRICS)} — for the "
                        f"LAPGAN baseline, which has no bound, {','.join(NO_BOUND_METRICS)} — and cycle when "
                        "--captioner is given)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--data", default=None, help="data folder, if not the one the checkpoint was trained with")
    for f, help_ in (("bound", "images per split for the bound"), ("iwae", "images for IWAE"),
                     ("K", "importance samples for IWAE"), ("queries", "retrieval captions"),
                     ("ssi", "captions for SSI"), ("fidelity", "captions per split for fidelity")):
        p.add_argument(f"--{f.lower()}", type=positive_int, default=getattr(Sizes, f),
                       help=f"{help_} (default %(default)s)")
    p.add_argument("--classifiers", default=None,
                   help="folder of cached fidelity classifiers (default ~/.cache/minidraw/classifiers)")
    p.add_argument("--sharpen", metavar="CKPT", default=None,
                   help="a sharpener checkpoint: also measure the bound, SSI and fidelity after sharpening")
    p.add_argument("--captioner", metavar="CKPT_OR_NAME", default=None,
                   help="the captioner the cycle metric reads the drawings with: a checkpoint of `minidraw train "
                        "--config captioner-mnist` (or captioner-shapes), or a pretrained name (default for "
                        "--metrics cycle: the one shipped for the data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: CUDA, then MPS, then the CPU)")


def run(args: argparse.Namespace) -> int:
    """Carry out ``minidraw evaluate``; user errors propagate (the CLI reports them in one line)."""
    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(metrics or ()) - set(METRICS))
    if unknown:
        raise UserError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    if args.captioner and metrics is not None and "cycle" not in metrics:
        raise UserError("--captioner is for the cycle metric: add cycle to --metrics (or leave --metrics out)")
    if args.json:                                         # before the evaluation, not after it
        json_path = Path(args.json)
        if json_path.is_dir() or not json_path.parent.is_dir() or not os.access(json_path.parent, os.W_OK):
            raise UserError(f"cannot write --json {args.json}: give a file in a folder you can write to")
    dev = pick_device(args.device)
    model, ckpt = load(args.checkpoint, map_location=dev)
    if metrics is None:                     # a GAN (the LAPGAN baseline) has no bound: SSI and fidelity only
        default = DEFAULT_METRICS if kind_of(model).has_bound else NO_BOUND_METRICS
        metrics = [*default, *(["cycle"] if args.captioner else [])]
    refuse_non_drawing(ckpt["kind"], args.checkpoint,
                       sharpener_hint=f"evaluate the drawing model and give the sharpener as --sharpen {args.checkpoint}",
                       captioner_hint=f"evaluate a drawing model and give the captioner as --captioner "
                                      f"{args.checkpoint} (the cycle metric)")
    model.to(dev)
    if "train" not in ckpt:
        raise UserError(f"{args.checkpoint} has no training settings, so its data is unknown; evaluate a checkpoint "
                        "written by `minidraw train`")
    sharpener = None
    if args.sharpen:
        sharpener = load_sharpener(args.sharpen, model, vocabulary_for(model, ckpt), map_location=dev)
    captioner = load_captioner(args.captioner, map_location=dev) if args.captioner else None
    splits = splits_for(ckpt["train"], model.cfg, args.data)
    described = describe_splits(splits)
    sizes = Sizes(bound=args.bound, iwae=args.iwae, K=args.k, queries=args.queries, ssi=args.ssi,
                  fidelity=args.fidelity)
    row = evaluate(model, splits, metrics, sizes, seed=args.seed, progress=True, classifiers=args.classifiers,
                   sharpener=sharpener, captioner=captioner)
    row = {"checkpoint": str(args.checkpoint), "step": ckpt.get("step"), "data": ckpt.get("data"),
           "splits": described, **row}
    path = Path(args.checkpoint)
    for name, words in described.items():                 # which compositions each number was measured on
        print(f"{name}: {words}")
    if "heldout" in splits and "heldout-val" not in splits:
        print("heldout-val: none (this model's training did not withhold validation compositions, so choices "
              "about it could only be made on the reported held-out ones)")
    print(markdown_table({(path.parent.name if path.stem == "checkpoint" else path.stem) or "model": row}))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
