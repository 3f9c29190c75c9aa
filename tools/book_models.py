"""Train and ship the small models the Evaluation chapter compares.

    python tools/book_models.py train [--runs runs/book] [--steps 2000] [NAME ...]
    python tools/book_models.py export [--runs runs/book]

``train`` runs ``minidraw train`` for each model of :func:`minidraw.configs.comparison`
(resumable: run it again after a kill), all with the same data, batch 64, Adam
3e-3 and the same number of steps, so the rows of the chapter's table differ
only by the model. ``export`` writes
the shipped copies to ``book/checkpoints/NAME.pt``: the weights in float16 (half
the bytes; the model is loaded back in float32), the model's configuration, its
training settings, data description and vocabulary — no optimiser state.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from minidraw.configs import COMPARISON_SETTINGS, COMPARISON_STEPS, comparison

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "book" / "checkpoints"
# name: (preset, extra --set arguments). One row of the paper's table per model, on each data set.
MODELS = {f"{ds}_{row}": spec for ds in ("mnist", "shapes") for row, spec in comparison(ds).items()}


def train(runs: Path, steps: int, names: list[str]) -> None:
    for name in names or MODELS:
        preset, sets = MODELS[name]
        cmd = [sys.executable, "-m", "minidraw", "train", "--preset", preset, "--out", str(runs / name),
               "--max-steps", str(steps), "--quiet", "--set", *COMPARISON_SETTINGS, *sets]
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)


def export(runs: Path) -> None:
    SHIPPED.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        src = runs / name / "checkpoint.pt"
        if not src.exists():
            print(f"skip {name}: no {src}")
            continue
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
        ckpt.pop("optimizer", None)
        ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
        torch.save(ckpt, SHIPPED / f"{name}.pt")
        print(f"{SHIPPED / f'{name}.pt'}: step {ckpt['step']}, {(SHIPPED / f'{name}.pt').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["train", "export"])
    p.add_argument("names", nargs="*", help=f"models to train (default all): {', '.join(MODELS)}")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "book")
    p.add_argument("--steps", type=int, default=COMPARISON_STEPS)
    a = p.parse_args()
    train(a.runs, a.steps, a.names) if a.action == "train" else export(a.runs)
