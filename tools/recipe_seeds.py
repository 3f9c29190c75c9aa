"""Every seed of a recipe, measured once and reported: each seed's row and the mean ± sd over seeds.

    python tools/recipe_seeds.py measure aligndraw-mnist --runs ~/runs     # each RUNS/NAME-sSEED
    python tools/recipe_seeds.py table aligndraw-mnist-paper noaligndraw-mnist aligndraw-mnist
    python tools/recipe_seeds.py misses aligndraw-mnist --runs ~/runs                # where validation fails

``measure`` evaluates the last checkpoint of every seed's run (``RUNS/NAME-sSEED``) as the model cards do — the bound on 1,000 test images, caption
fidelity on 1,000 captions of each split — and writes ``minidraw/recipes/seeds/NAME.json`` (one row per seed,
with the split each number was measured on) and each seed's learning curve ``minidraw/recipes/curves/NAME-sSEED.csv``.
The protocol: no checkpoint is picked (the last one of the recipe's schedule is the run's result), the shipped
seed is the first, fixed before the runs, and every choice about the recipe was made on the validation
compositions (``fidelity_heldout_val``); the held-out compositions are measured here, once per seed.
``table`` prints the comparison (:func:`minidraw.seeds.table`). ``misses`` (MNIST with captions) draws 1,000
captions of the *validation* compositions with each seed's last checkpoint and says, per template and per
validation fact, which digit was drawn where the caption named another: the diagnosis a choice may rest on.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]     # this checkout's minidraw and tools

from pretrained_models import SIZES, evaluate_file, write_curve  # noqa: E402

SEEDS_DIR = ROOT / "minidraw" / "recipes" / "seeds"


def seed_runs(name: str, runs: Path) -> dict[int, Path]:
    """``{seed: run directory}`` of recipe ``name`` under ``runs``: each ``NAME-sSEED`` that holds a checkpoint."""
    found = {}
    for run in sorted(runs.glob(f"{name}-s*")):
        m = re.fullmatch(rf"{re.escape(name)}-s(\d+)", run.name)
        if m and (run / "checkpoint.pt").is_file():
            found[int(m.group(1))] = run
    return found


def measure(name: str, runs: Path, classifiers: str | None) -> Path:
    import torch
    found = seed_runs(name, runs)
    if not found:
        raise SystemExit(f"no runs of {name} under {runs} (expected {name}-s0, {name}-s1, ...)")
    rows = []
    for seed, run in sorted(found.items()):
        ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
        train = ckpt.get("train", {})
        if not train.get("heldout_val", False):
            raise SystemExit(f"{run}: trained without validation compositions (heldout_val), so choices about it "
                             "were not made under the protocol; rerun the recipe")
        if train.get("seed") != seed or ckpt.get("step") != train.get("max_steps"):
            raise SystemExit(f"{run}: seed {train.get('seed')} at step {ckpt.get('step')} of {train.get('max_steps')}:"
                             " measure a finished run of its own seed")
        row = evaluate_file(run / "checkpoint.pt", classifiers)
        row = {"seed": seed, **{k: v for k, v in row.items() if k != "data"}}
        rows.append(row)
        write_curve(f"{name}-s{seed}", run)      # a run begun from another's weights: both curves (stage_runs)
        print(f"seed {seed}: seen {row.get('fidelity_seen', float('nan')):.1f} %, validation "
              f"{row.get('fidelity_heldout_val', float('nan')):.1f} %, held out {row.get('fidelity_heldout', float('nan')):.1f} %")
    from minidraw.evaluate import describe_splits, splits_for
    from minidraw.checkpoint import load
    model, ckpt = load(found[min(found)] / "checkpoint.pt")
    SEEDS_DIR.mkdir(parents=True, exist_ok=True)
    path = SEEDS_DIR / f"{name}.json"
    path.write_text(json.dumps({"name": name, "splits": describe_splits(splits_for(ckpt["train"], model.cfg)),
                                "captions_per_split": SIZES["fidelity"], "rows": rows}, indent=1) + "\n")
    print(f"wrote {path}")
    return path


def misses(name: str, runs: Path, classifiers: str | None, n: int = 1000) -> None:
    """Per seed: each template's rate on the validation captions and, for every (slot, digit) the captions
    named but the drawing missed, what was read there instead (-1: no readable digit)."""
    from collections import Counter, defaultdict

    import numpy as np
    from minidraw.checkpoint import load
    from minidraw.evaluate import splits_for
    from minidraw.measures import generate
    from minidraw.scoring import caption_fidelity
    found = seed_runs(name, runs)
    for seed, run in sorted(found.items()):
        model, ckpt = load(run / "checkpoint.pt")
        data = splits_for(ckpt["train"], model.cfg).get("heldout-val")
        if data is None or not hasattr(data, "validation_pairs"):
            raise SystemExit(f"{run}: no validation compositions of MNIST with captions to diagnose")
        images = generate(model, data, n, seed=0)[0]
        r = caption_fidelity(images, data.texts(np.arange(len(images))), data, classifiers)
        read, named = r.details["digit"], r.details["named_digit"]
        print(f"{name} seed {seed} ({run}, step {ckpt.get('step')}): {r.rate:.1f} % of {len(r)} validation captions shown")
        wrong = defaultdict(Counter)
        for t, title in enumerate(r.template_names):
            sel = r.template == t
            if sel.any():
                print(f"  {title:>18s}: {100 * r.correct[sel].mean():5.1f} % of {sel.sum()}")
            for i in np.nonzero(sel & ~r.correct)[0]:
                for k in np.nonzero(r.named[i] & (read[i] != named[i]))[0]:
                    wrong[title, int(k), int(named[i, k])][int(read[i, k])] += 1
        print("  misses: (template, object, digit named) -> digits read there instead")
        for key, c in sorted(wrong.items(), key=lambda kv: -sum(kv[1].values()))[:12]:
            print(f"    {key}: {dict(c.most_common(4))}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["measure", "table", "misses"])
    p.add_argument("names", nargs="+", help="recipe names, e.g. aligndraw-mnist")
    p.add_argument("--runs", type=Path, help="the folder holding NAME-sSEED run directories (measure, misses)")
    p.add_argument("--classifiers", default=None, help="fidelity classifiers' cache folder")
    a = p.parse_args(argv)
    if a.action in ("measure", "misses"):
        if a.runs is None:
            p.error(f"{a.action} needs --runs")
        for name in a.names:
            if a.action == "measure":
                measure(name, a.runs, a.classifiers)
            else:
                misses(name, a.runs, a.classifiers)
    else:
        from minidraw.seeds import table
        print(table(a.names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
