"""Ship long-trained weights: evaluate a run, export it when it beats the shipped file, write its card.

    python tools/pretrained_models.py export aligndraw-mnist --run ~/runs/aligndraw-mnist [--force]
    python tools/pretrained_models.py curve aligndraw-mnist --run ~/runs/aligndraw-mnist
    python tools/pretrained_models.py card aligndraw-mnist

``export`` evaluates the run's checkpoint with :func:`minidraw.evaluate.evaluate` (the bound on
1,000 test images and caption fidelity on 1,000 captions per split, seen and held out) and the
shipped file the same way. A run under the validation protocol (``heldout_val``) is exported when it
is seed 0 — the shipped seed is fixed before the runs, never picked on held-out numbers. An older run
is exported when it is better (higher mean of the two fidelities for a captioned model, a lower test
bound for unconditional DRAW); ``--force`` exports either way. It writes
the float16 weights with :func:`minidraw.pretrained.export`, the learning curve
(``minidraw/recipes/curves/NAME.csv``) and the model card (``minidraw/weights/NAME.md``).

How each shipped model is trained is a TOML recipe in ``minidraw/recipes/NAME.toml``:
``minidraw train --config NAME --out RUN``. A new machine continues a run
from the shipped weights with ``--set init=NAME`` (fresh optimiser, a short warm-up).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))      # this checkout's minidraw, not another one installed: exports write into ROOT
CURVES = ROOT / "minidraw" / "recipes" / "curves"
SIZES = dict(bound=1000, fidelity=1000, ssi=500, sharp_fidelity=500)


# the drawing model each shipped sharpener is measured on: its samples before and after sharpening
SHARPENS = {"mnist": "aligndraw-mnist", "shapes": "aligndraw-shapes"}


def evaluate_file(path: Path, classifiers: str | None = None) -> dict:
    """Test bound and caption fidelity (seen, held out, per template) of a checkpoint file; for a
    sharpener, D's and G's test losses and the shipped alignDRAW's bound, SSI and fidelity before
    and after sharpening."""
    from minidraw.data.batches import fixed_batches
    from minidraw.evaluate import Sizes, evaluate, splits_for
    from minidraw.checkpoint import load
    model, ckpt = load(path)
    splits = splits_for(ckpt["train"], model.cfg)
    if ckpt["kind"] == "sharpener":
        from minidraw import pretrained
        drawer_name = SHARPENS["shapes" if "shapes" in ckpt["train"]["preset"] else "mnist"]
        drawer, _ = pretrained.load(drawer_name)
        row = {"drawer": drawer_name, **model.test_metrics(fixed_batches(splits["test"], 500))}
        # the drawings are measured on the drawer's splits: under the protocol its seen scenes leave out the
        # validation compositions, which it never drew in training
        drawer_train = torch.load(pretrained.path(drawer_name), map_location="cpu", weights_only=True).get("train", {})
        splits = splits_for({**drawer_train, "data": ckpt["train"].get("data")}, drawer.cfg)
        row.update(evaluate(drawer, splits, ["bound", "ssi", "fidelity"], Sizes(bound=SIZES["bound"], ssi=SIZES["ssi"],
                                                                                 fidelity=SIZES["sharp_fidelity"]),
                            classifiers=classifiers, sharpener=model))
        return {"step": ckpt.get("step"), "data": ckpt.get("data"), **row}
    if ckpt["kind"] == "captioner":
        return {"step": ckpt.get("step"), "data": ckpt.get("data"), **captioner_row(model, splits)}
    if ckpt["kind"] == "lapgan":               # the LAPGAN baseline: no bound; SSI and fidelity, sharpened or not
        from minidraw import pretrained
        from minidraw.lapgan import LapGanPyramid
        data = "shapes" if "shapes" in ckpt["train"]["preset"] else "mnist"
        sharpener, _ = pretrained.load(f"sharpen-{data}")
        row = {"sharpener": f"sharpen-{data}", **model.test_metrics(fixed_batches(splits["test"], 500))}
        sizes = Sizes(ssi=SIZES["ssi"], fidelity=SIZES["fidelity"])
        coarse = evaluate(model, splits, ["ssi", "fidelity"], sizes, classifiers=classifiers)
        row.update({f"{k}_coarse": v for k, v in coarse.items() if k.startswith(("ssi", "fidelity"))})
        row.update(evaluate(LapGanPyramid(model, sharpener), splits, ["ssi", "fidelity"], sizes, classifiers=classifiers))
        return {"step": ckpt.get("step"), "data": ckpt.get("data"), **row}
    captioned = not isinstance(splits["test"], torch.Tensor)
    metrics = ["bound", "fidelity"] if captioned else ["bound"]
    row = evaluate(model, splits, metrics, Sizes(bound=SIZES["bound"], fidelity=SIZES["fidelity"]), classifiers=classifiers)
    return {"step": ckpt.get("step"), "data": ckpt.get("data"), **row}


def captioner_row(model, splits: dict) -> dict:
    """A captioner on real images: teacher-forced numbers on 500 test images, and how often its caption
    describes the right scene (greedy and beam 3) on 1,000 images of seen and of held-out compositions."""
    from minidraw.data.batches import fixed_batches
    from minidraw.scoring import accuracy
    row = model.test_metrics(fixed_batches(splits["test"], 500))
    for split, name in (("test", "seen"), ("heldout", "heldout")):
        for width in (1, 3):
            r = accuracy(model, splits[split], SIZES["fidelity"], width=width)
            tag = "" if width == 1 else f"_beam{width}"
            row[f"exact_{name}{tag}"], row[f"slots_{name}{tag}"] = r["exact"], r["slots"]
    return row


def better(new: dict, old: dict | None) -> bool:
    if old is None:
        return True
    if "exact_seen" in new:            # a captioner: its captions must describe the scene
        score = lambda r: r["exact_seen"] + r["exact_heldout"]  # noqa: E731
        return score(new) > score(old)
    if "fidelity_seen_sharp" in new:   # a sharpener: the drawings it sharpens must show their captions
        score = lambda r: r["fidelity_seen_sharp"] + r.get("fidelity_heldout_sharp", 0)  # noqa: E731
        return score(new) > score(old)
    if "fidelity_seen" in new:
        score = lambda r: r["fidelity_seen"] + r.get("fidelity_heldout", 0)  # noqa: E731
        return score(new) > score(old)
    return new["test_bound"] < old["test_bound"]


# ---- the learning curve ----------------------------------------------------------------------
def wall_minutes(rows: list[dict]) -> list[float]:
    """Minutes of training before each row. ``seconds`` restarts at 0 when a run is resumed, so the
    wall time is the sum of the segments' times."""
    out, offset, last = [], 0.0, 0.0
    for r in rows:
        s = r.get("seconds")
        if s is None:
            out.append((offset + last) / 60)
            continue
        if s < last - 1e-9:                       # a resumed segment started
            offset += last
        last = s
        out.append((offset + s) / 60)
    return out


def curve_rows(run: Path) -> list[dict]:
    """One row per evaluation of ``run/metrics.jsonl``: step, minutes, test bound, fidelity per split and
    template."""
    from minidraw.rundir import read_metrics
    rows = read_metrics(run)
    minutes = wall_minutes(rows)
    bounds = {r["step"]: r["test_bound"] for r in rows if "test_bound" in r}
    key = "fidelity_seen" if any("fidelity_seen" in r for r in rows) else "test_bound"   # DRAW: the bound only
    if any("exact_seen" in r for r in rows):                                             # a captioner
        names = ("test_nats_per_word", "test_word_acc", "exact_seen", "slots_seen", "exact_heldout", "slots_heldout")
        return [{"step": r["step"], "minutes": round(m, 2), **{k: round(r[k], 4) for k in names}}
                for r, m in zip(rows, minutes) if "exact_seen" in r]
    if any("test_d_loss" in r for r in rows):                                            # a sharpener
        names = ("test_d_loss", "test_g_loss", "test_d_acc_real", "test_d_acc_fake")
        return [{"step": r["step"], "minutes": round(m, 2), **{k: round(r[k], 4) for k in names}}
                for r, m in zip(rows, minutes) if "test_d_loss" in r]
    out = []
    for r, m in zip(rows, minutes):
        if key not in r:
            continue
        row = {"step": r["step"], "minutes": round(m, 2), "test_bound": round(bounds.get(r["step"], float("nan")), 2)}
        for split in ("seen", "heldout_val", "heldout"):
            if f"fidelity_{split}" in r:
                row[f"fidelity_{split}"] = round(r[f"fidelity_{split}"], 1)
                for template, v in r[f"fidelity_{split}_by_template"].items():
                    row[f"{split.replace('_', '-')}: {template}"] = round(v, 1)
        out.append(row)
    return out


def read_curve_rows(path: Path) -> list[dict]:
    """The rows of a committed curve, numbers as numbers."""
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "step" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def stage_runs(run: Path) -> list[Path]:
    """The run directories of every stage that ends in ``run``, first stage first: a run that went on from a
    training checkpoint (``--set init=RUN/checkpoint.pt``) whose run directory is still there follows that run."""
    runs = [run]
    while (runs[0] / "checkpoint.pt").is_file():
        ckpt = torch.load(runs[0] / "checkpoint.pt", map_location="cpu", weights_only=True)
        init = Path(str(ckpt.get("train", {}).get("init") or ""))
        if not (init.name == "checkpoint.pt" and (init.parent / "metrics.jsonl").is_file()) or init.parent in runs:
            return runs
        runs.insert(0, init.parent)
    return runs


def write_curve(name: str, run: Path, after: bool = False) -> Path:
    """``minidraw/recipes/curves/NAME.csv`` from ``run`` and the runs of its earlier stages (:func:`stage_runs`),
    each stage's steps and minutes counted on from the last row of the one before; ``after``: the first of them went
    on from the shipped weights, so its rows follow the committed curve's."""
    CURVES.mkdir(parents=True, exist_ok=True)
    path = CURVES / f"{name}.csv"
    rows = read_curve_rows(path) if after else []
    for stage in stage_runs(run):
        more = curve_rows(stage)
        if not more:
            raise SystemExit(f"{stage}: no evaluations in metrics.jsonl (train with eval_every > 0)")
        step, minutes = (rows[-1]["step"], rows[-1]["minutes"]) if rows else (0, 0.0)
        rows += [{**r, "step": r["step"] + step, "minutes": round(r["minutes"] + minutes, 2)} for r in more]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[-1]))
        w.writeheader()
        w.writerows(rows)
    print(f"{path}: {len(rows)} evaluations, up to step {rows[-1]['step']} ({rows[-1]['minutes']:.0f} min)")
    return path


# ---- the model card ----------------------------------------------------------------------------
def machine() -> str:
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()}-core {cpu} CPU, {threads} thread(s), torch {torch.__version__}, Python {platform.python_version()}"


# What a card must say beyond its measurements: findings about the model that a user of the weights should know
NOTES_DIR = Path(__file__).resolve().parents[1] / "minidraw" / "recipes"


def notes(name: str) -> list[str]:
    """The card's notes, from ``minidraw/recipes/NAME.notes.md`` when there is one (kept beside the recipe, so a
    re-export keeps them)."""
    path = NOTES_DIR / f"{name}.notes.md"
    return ["", "## Notes", "", path.read_text().strip()] if path.is_file() else []


def card(name: str, result: dict, minutes: float | None, where: str) -> str:
    from minidraw import pretrained
    info = pretrained.info(name)
    ckpt = torch.load(pretrained.path(name), map_location="cpu", weights_only=True)
    train = ckpt.get("train", {})
    from minidraw.configs import recipes
    lines = [f"# {name}", "", info.get("description", ""), "",
             "| | |", "|---|---|",
             f"| file | `{info['file']}` ({Path(pretrained.path(name)).stat().st_size / 1e6:.2f} MB, float16 weights, no optimiser state) |",
             f"| sha256 | `{info['sha256']}` |",
             f"| data | {re.sub(r' [(]/[^)]*[)]', '', str(ckpt.get('data', '?')))} |",   # no build machine's path
             f"| steps | {ckpt.get('step')} (batch {train.get('batch_size')})"
             + (f", in {len(ckpt['stages'])} stages (below) |" if ckpt.get("stages") else " |"),
             f"| wall time | {minutes:.0f} minutes of training |" if minutes else "| wall time | unknown |",
             f"| machine | {where} |",
             f"| exported | {datetime.date.today().isoformat()} |",
             f"| recipe | in stages, below (`minidraw/recipes/{name}.toml`) |" if ckpt.get("stages") and name in recipes() else
             f"| recipe | `minidraw train --config {name} --out RUN` (`minidraw/recipes/{name}.toml`) |"
             if name in recipes() else
             "| recipe | see the training settings below |",
             "", "## Measured", ""]
    if "drawer" in result:
        return "\n".join(lines + sharpener_card(result, ckpt, train))
    if "exact_seen" in result:
        return "\n".join(lines + captioner_card(result) + notes(name) + settings(ckpt, train))
    if "sharpener" in result:
        return "\n".join(lines + lapgan_card(result, ckpt, train))
    lines += [f"With `minidraw.evaluate.evaluate` on {SIZES['bound']:,} test images (bound)"
             + (f" and {SIZES['fidelity']:,} captions per split (fidelity)" if "fidelity_seen" in result else "")
             + "; seed 0.", "",
             f"* test −L = {result['test_bound']:.2f} ± {result['test_bound_se']:.2f} nats per image; "
             f"train −L = {result['train_bound']:.2f} ± {result['train_bound_se']:.2f}"]
    if "fidelity_seen" in result:
        val = "fidelity_heldout_val" in result
        lines += [f"* caption fidelity: **{result['fidelity_seen']:.1f} %** on seen compositions, "
                  + (f"{result['fidelity_heldout_val']:.1f} % on the validation ones, " if val else "")
                  + f"**{result.get('fidelity_heldout', float('nan')):.1f} %** on held-out ones", "",
                  "| template | seen % |" + (" validation % |" if val else "") + " held-out % |",
                  "|---|---:|" + ("---:|" if val else "") + "---:|"]
        held = result.get("fidelity_heldout_by_template", {})
        checked = result.get("fidelity_heldout_val_by_template", {})
        for t, v in result["fidelity_seen_by_template"].items():
            lines.append(f"| {t} | {v:.1f} |" + (f" {checked.get(t, float('nan')):.1f} |" if val else "")
                         + f" {held.get(t, float('nan')):.1f} |")
    return "\n".join(lines + seeds_section(name) + notes(name) + stages(name, ckpt) + settings(ckpt, train))


def seeds_section(name: str) -> list[str]:
    """Every seed of the recipe (``tools/recipe_seeds.py measure``): each seed's row, the mean ± sd, the splits
    they were measured on, and which seeds miss the targets. The shipped weights are the first seed."""
    from minidraw import pretrained, seeds
    if not (seeds.SEEDS_DIR / f"{name}.json").is_file():
        return []
    rows = seeds.rows(name)
    shipped = torch.load(pretrained.path(name), map_location="cpu", weights_only=True).get("train", {})
    if shipped.get("heldout_val"):
        said = (f"The recipe was run with {len(rows)} seed(s); the shipped weights are seed {rows[0]['seed']}, fixed "
                "before the runs.")
    else:
        said = ("The weights shipped here were trained before the protocol; they are replaced by seed 0 of the runs "
                f"below once every seed has finished. Seeds measured so far: {len(rows)}.")
    lines = ["", "## Every seed", "",
             said + " No checkpoint and no seed was picked: the held-out compositions were measured once per seed, "
             f"on the last checkpoint ({SIZES['fidelity']:,} captions per split"
             + ("; the notes say which settings were fixed before the protocol, and on what" if notes(name) else "")
             + "):", "",
             seeds.seed_table(name), "", "Splits:", ""]
    lines += [f"* {split}: {words}" for split, words in seeds.splits(name).items()]
    missed = seeds.shortfalls(name)
    lines += ["", "Targets (every seed: seen ≥ 90 %, held out ≥ 85 %, every held-out template ≥ 75 %): "
              + ("met by every seed." if not missed else "missed — " + "; ".join(missed) + ".")]
    return lines


def stages(name: str, ckpt: dict) -> list[str]:
    """For weights trained in stages, each one: its steps, and the settings that differ from the stage before."""
    from minidraw.configs import recipes
    if not ckpt.get("stages"):
        return []
    lines = ["", "## Stages", "", "Each stage went on from the weights of the one before (`init`, a fresh optimiser):", ""]
    previous: dict = {}
    for k, stage in enumerate(ckpt["stages"], 1):
        train = stage["train"]
        before = flat(previous)          # a setting the stage before did not have yet (a newer field) kept its default
        changed = {key: v for key, v in flat(train).items()
                   if key != "init" and (key.startswith("model.") or key in before) and before.get(key) != v}
        how = (f"`minidraw train --config {name} --out RUN`" if k == 1 and name in recipes() else
               "from the stage before: `--set init=RUN/checkpoint.pt " + " ".join(f"{key}={v}" for key, v in
                                                                                 changed.items()) + "`")
        lines.append(f"{k}. {stage['step']:,} steps, {how}")
        previous = train
    return lines


def flat(train: dict) -> dict:
    """Training settings as ``--set`` keys: ``{"lr": .., "model.z_size": ..}``."""
    return {**{k: v for k, v in train.items() if k != "model"},
            **{f"model.{k}": v for k, v in (train.get("model") or {}).items()}}


def settings(ckpt: dict, train: dict) -> list[str]:
    """The end of every card: the model's configuration and its training settings, as JSON."""
    train = {**train, **({"data": "(the data folder)"} if train.get("data") else {})}   # no build machine's path
    if "/" in str(train.get("init") or ""):                                             # a run's checkpoint file
        train["init"] = "RUN/checkpoint.pt (the stage before)"
    return ["", "## Configuration", "", "```json", json.dumps(ckpt["config"], indent=1), "```", "",
            "## Training settings", "", "```json", json.dumps(train, indent=1), "```", ""]


def sharpener_card(result: dict, ckpt: dict, train: dict) -> list[str]:
    """The measured part of a sharpener's card: D and G on test images, and what it does to the
    shipped alignDRAW's drawings (bound, SSI, fidelity before and after)."""
    sharp = lambda k, f: f"{result[k]:{f}}" if k in result else "–"  # noqa: E731
    lines = [f"On 500 test images: D's loss {result['test_d_loss']:.3f}, G's loss {result['test_g_loss']:.3f}; "
             f"D right on {100 * result['test_d_acc_real']:.1f} % of real and {100 * result['test_d_acc_fake']:.1f} % "
             "of sharpened images (50 %: it cannot tell them apart).", "",
             f"Applied to the shipped `{result['drawer']}` (`minidraw.evaluate.evaluate(..., sharpener=...)`, "
             f"bound on {SIZES['bound']:,} test images, SSI on {SIZES['ssi']:,} captions, fidelity on {SIZES['sharp_fidelity']:,} captions per split, seed 0):",
             "", "| | before | after sharpening |", "|---|---:|---:|",
             f"| test −L (nats; after: the paper's 'after sharpening' column) | {result['test_bound']:.2f} | "
             f"{sharp('test_bound_sharp', '.2f')} |",
             f"| SSI | {result['ssi']:.3f} | {sharp('ssi_sharp', '.3f')} |",
             f"| fidelity, seen % | {result['fidelity_seen']:.1f} | {sharp('fidelity_seen_sharp', '.1f')} |",
             f"| fidelity, held-out % | {result.get('fidelity_heldout', float('nan')):.1f} | "
             f"{sharp('fidelity_heldout_sharp', '.1f')} |"]
    return lines + settings(ckpt, train)


def lapgan_card(result: dict, ckpt: dict, train: dict) -> list[str]:
    """The measured part of the LAPGAN baseline's card: D₀ and G₀ on test pictures, and SSI and caption fidelity
    of its drawings, the coarse level alone (upsampled) and sharpened by the shipped sharpener."""
    lines = [f"On 500 test pictures: D₀'s loss {result['test_d_loss']:.3f}, G₀'s loss {result['test_g_loss']:.3f}; "
             f"D₀ right on {100 * result['test_d_acc_real']:.1f} % of real and {100 * result['test_d_acc_fake']:.1f} % "
             "of generated coarse pictures (50 %: it cannot tell them apart). A GAN has no likelihood: no bound.", "",
             f"Its drawings (`minidraw.evaluate.evaluate`, SSI on {SIZES['ssi']:,} captions, fidelity on "
             f"{SIZES['fidelity']:,} captions per split, seed 0):", "",
             f"| | coarse level, upsampled | sharpened by `{result['sharpener']}` (the LAPGAN baseline) |",
             "|---|---:|---:|",
             f"| SSI | {result['ssi_coarse']:.3f} | {result['ssi']:.3f} |",
             f"| fidelity, seen % | {result['fidelity_seen_coarse']:.1f} | {result['fidelity_seen']:.1f} |",
             f"| fidelity, held-out % | {result['fidelity_heldout_coarse']:.1f} | {result['fidelity_heldout']:.1f} |"]
    return lines + settings(ckpt, train)


def captioner_card(result: dict) -> list[str]:
    """The measured part of a captioner's card: its captions of real test images."""
    n = SIZES["fidelity"]
    lines = [f"On real test images (`minidraw.scoring.accuracy`, the first {n:,} images of each split): a "
             "caption is *exact* when it describes the same scene as the true one (\"3 is on the left of 7\" and "
             "\"7 is on the right of 3\" are one scene); *slots* is the share of the scene's facts (each digit or "
             "object in its place, the background) that the caption gets right.", "",
             "| decoding | exact, seen % | exact, held-out % | slots, seen % | slots, held-out % |",
             "|---|---:|---:|---:|---:|"]
    for tag, name in (("", "greedy"), ("_beam3", "beam search, width 3")):
        lines.append(f"| {name} | {result['exact_seen' + tag]:.1f} | {result['exact_heldout' + tag]:.1f} | "
                     f"{result['slots_seen' + tag]:.1f} | {result['slots_heldout' + tag]:.1f} |")
    lines += ["", f"Teacher-forced, on 500 test images: {result['test_nats_per_word']:.3f} nats per word, "
              f"{100 * result['test_word_acc']:.1f} % of words (and ends) predicted right."]
    return lines


def summary(r: dict) -> str:
    """One line of what ``evaluate_file`` measured."""
    if "exact_seen" in r:
        return (f"step {r['step']}: exact {r['exact_seen']:.1f} % seen / {r['exact_heldout']:.1f} % held out "
                f"(beam 3: {r['exact_seen_beam3']:.1f} / {r['exact_heldout_beam3']:.1f} %)")
    if "sharpener" in r:
        return (f"step {r['step']}: fidelity {r['fidelity_seen']:.1f} / {r['fidelity_heldout']:.1f} %, SSI {r['ssi']:.3f} "
                f"(coarse level alone: {r['fidelity_seen_coarse']:.1f} / {r['fidelity_heldout_coarse']:.1f} %)")
    return (f"step {r['step']}: test −L {r['test_bound']:.2f}" + (
        f", fidelity {r['fidelity_seen']:.1f} / {r.get('fidelity_heldout', 0):.1f} %" if "fidelity_seen" in r else "")
        + (f"; after sharpening: −L {r['test_bound_sharp']:.2f}, fidelity {r['fidelity_seen_sharp']:.1f} / "
           f"{r.get('fidelity_heldout_sharp', 0):.1f} %" if "test_bound_sharp" in r else ""))


def write_card(name: str, run: Path | None, classifiers: str | None) -> Path:
    from minidraw import pretrained
    result = evaluate_file(pretrained.path(name), classifiers)
    minutes = None
    if run is not None and len(stage_runs(run)) == 1:    # a run in stages: the curve has every stage's minutes
        from minidraw.rundir import read_metrics
        rows = [r for r in read_metrics(run) if r["step"] <= (result["step"] or 0)]
        minutes = wall_minutes(rows)[-1] if rows else None
    elif (CURVES / f"{name}.csv").is_file():          # every stage's minutes: the committed curve's last row
        rows = [r for r in read_curve_rows(CURVES / f"{name}.csv") if r["step"] <= (result["step"] or 0)]
        minutes = rows[-1]["minutes"] if rows else None
    path = Path(pretrained.path(name)).with_suffix(".md")
    path.write_text(card(name, result, minutes, machine()))
    print(f"{path}: " + (f"(the shipped {result['drawer']}) " if "drawer" in result else "") + summary(result))
    return path


def export(name: str, run: Path, force: bool, classifiers: str | None) -> None:
    from minidraw import pretrained
    ckpt = run / "checkpoint.pt"
    new = evaluate_file(ckpt, classifiers)
    old = evaluate_file(pretrained.path(name), classifiers) if name in pretrained.list() else None
    print("run:    ", summary(new))
    print("shipped:", summary(old) if old else "none")
    train = torch.load(ckpt, map_location="cpu", weights_only=True).get("train", {})
    if train.get("heldout_val") and train.get("seed") != 0 and not force:
        raise SystemExit(f"{run} is seed {train.get('seed')}: under the protocol the shipped weights are seed 0, fixed "
                         "before the runs (every seed is reported by tools/recipe_seeds.py); --force to export anyway")
    if train.get("heldout_val"):     # the protocol: seed 0's last checkpoint ships; no choice on held-out numbers
        force = True
    if not (force or better(new, old)):
        print(f"the run does not improve on the shipped {name}; nothing exported (--force to export anyway)")
        return
    dest = pretrained.export(ckpt, name)                  # it decides whether the run is the next stage
    # the next stage of the shipped weights themselves, rather than of a run whose directory is at hand
    after = "stages" in torch.load(dest, map_location="cpu", weights_only=True) and len(stage_runs(run)) == 1
    print(f"exported {dest}" + (" as the next stage of the shipped weights" if after else ""))
    write_curve(name, run, after)
    write_card(name, None if after else run, classifiers)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["export", "curve", "card"])
    p.add_argument("name", help="a pretrained model's name, e.g. aligndraw-mnist")
    p.add_argument("--run", type=Path, help="the run directory (checkpoint.pt, metrics.jsonl)")
    p.add_argument("--force", action="store_true", help="export even when the run does not improve")
    p.add_argument("--classifiers", default=None, help="fidelity classifiers' cache folder")
    a = p.parse_args(argv)
    if a.action in ("export", "curve") and a.run is None:
        p.error(f"{a.action} needs --run")
    if a.action == "export":
        export(a.name, a.run, a.force, a.classifiers)
    elif a.action == "curve":
        write_curve(a.name, a.run)
    else:
        write_card(a.name, a.run, a.classifiers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
